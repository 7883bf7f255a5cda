// Layer: the base of every Keras-style layer. A layer is built once for an input shape (which
// creates its weights) and then called on tensors; its forward is ordinary code calling ops, so
// the tape differentiates it and no layer has a hand-written backward.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "weft/runtime/random.h"
#include "weft/runtime/tensor.h"

namespace weft {

// A state a stateful layer keeps between calls (Layer::states), and the value a call leaves for it.
struct StateUpdate {
  Tensor state;
  Tensor value;
};

// What a call sees besides its input, and what it leaves besides its output.
struct CallContext {
  bool training = false;
  // (batch, timesteps), 1 on real steps and 0 on padding; undefined when there is none. A layer
  // that consumes the time axis clears it; Embedding(mask_zero) sets it.
  Tensor mask = {};
  Generator* generator = &default_generator();  // dropout masks
  // Set by Embedding: its output and the ids it looked up, so that a layer that multiplies that
  // output by a weight can do so once per distinct id (matmul_by_id). A layer compares its input
  // with `output` by identity: any layer between them breaks the match.
  struct EmbeddedRows {
    Tensor output, ids;
  } embedded = {};
  // The new states of the stateful layers called, in call order, for the step code to store
  // (Sequential::call). A layer keeps the values itself when they were computed, so that its
  // next call starts from them.
  std::vector<StateUpdate> new_states = {};
};

struct Weight {
  std::string name;  // "kernel", "recurrent_kernel", "bias", "embeddings"
  Tensor value;      // a leaf that requires grad when trainable
  bool trainable = true;
};

// Values for a weight of `shape`, drawn from `generator`, in float64 (add_weight converts them
// to the layer's dtype).
using Initializer = std::function<Tensor(const Shape& shape, Generator& generator)>;

// While one is alive, the layers built on this thread take their weights from a file (a model
// file's loader opens one). Each weight starts as zeros instead of drawing from its initialiser:
// the file's values replace it, and drawing would cost time (an orthogonal initialiser is a QR
// decomposition) and move the default generator. And all of them together may hold at most
// `elements` values, the number the file holds, so that a damaged or hostile config cannot make
// weft allocate more than the file could fill: a weight beyond that is a weft::Error before
// anything is allocated.
class WeightsFromFile {
 public:
  explicit WeightsFromFile(int64_t elements);
  ~WeightsFromFile();
  WeightsFromFile(const WeightsFromFile&) = delete;
  WeightsFromFile& operator=(const WeightsFromFile&) = delete;

  // The active scope on this thread, or null.
  static WeightsFromFile* active();
  // Takes a weight of `shape` out of the values left; throws if it does not fit.
  void take(const std::string& weight, const Shape& shape);
  int64_t elements() const { return elements_; }

 private:
  int64_t elements_;
  int64_t left_;
  WeightsFromFile* outer_;
};

class Layer {
 public:
  virtual ~Layer() = default;

  // The class name as Keras prints it in summary(): "LSTM", "Dense".
  virtual std::string type_name() const = 0;
  // Checks the input shape (batch excluded; -1 for an unknown number of timesteps), creates
  // the weights and returns the output shape (batch excluded). Throws weft::Error in Keras's
  // words for an incompatible input.
  virtual Shape build(const Shape& input_shape, Generator& generator) = 0;
  // The forward pass on a batch.
  virtual Tensor call(const Tensor& x, CallContext& context) = 0;
  virtual std::unique_ptr<Layer> clone() const = 0;
  // Clears state kept between calls (stateful recurrent layers); nothing for the others.
  virtual void reset_states() {}
  // The states a stateful layer keeps between calls (empty for the others): a compiled step takes
  // them as inputs and writes the next ones into them. A stateful layer that keeps none yet
  // starts them here, as zeros for `batch` rows, so that they exist before a step is captured.
  // A reference, not a copy (a streaming call asks on every call), valid until the layer's next
  // call, reset_states() or states().
  virtual const std::vector<Tensor>& states(int64_t batch);
  // Whether the layer's call in training or inference mixes the samples of a batch (a statistic
  // over the batch). None of weft's layers does; fit() and predict() then run the halves of a
  // large batch at once on two threads, which a layer that does must refuse by returning true.
  virtual bool mixes_samples(bool /*training*/) const { return false; }

  // Snake-case type name, numbered from the second of a kind in a model: "lstm", "lstm_1".
  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }
  // The default name's stem: "lstm" for LSTM, "simple_rnn" for SimpleRNN.
  std::string base_name() const;

  bool built() const { return output_shape_.has_value(); }
  const Shape& input_shape() const;
  const Shape& output_shape() const;
  // The dtype of the weights (Keras's dtype=): float32 unless set, float64 for exact checks.
  DType dtype() const { return dtype_; }
  // The input shape given at declaration (Keras's input_shape=), if any.
  const std::optional<Shape>& declared_input_shape() const { return declared_input_shape_; }
  // The batch size given at declaration (Keras's batch_size=, with input_shape): Keras needs it
  // for stateful layers. weft runs any batch size; a saved model file keeps it for Keras.
  const std::optional<int64_t>& declared_batch_size() const { return declared_batch_size_; }

  // Weights in creation order; sublayers' weights included (Bidirectional).
  virtual std::vector<Weight*> weights();
  // "LAYER/WEIGHT": the weight's name among a compiled step's inputs and an optimizer's slots.
  std::string weight_path(const Weight& weight) const { return name_ + "/" + weight.name; }
  int64_t count_params();

  // Runs build() once and records the shapes.
  Shape build_for(const Shape& input_shape, Generator& generator);

 protected:
  Layer() = default;
  Layer(const Layer& other);  // copies options, never weights or state
  Layer& operator=(const Layer&) = delete;

  Weight& add_weight(std::string name, const Shape& shape, const Initializer& initializer,
                     Generator& generator);
  // Keras's message for an input of the wrong rank:
  // Input 0 of layer "lstm_1" is incompatible with the layer: expected ndim=3, found ndim=2.
  // Full shape received: (None, 64)
  void expect_ndim(const Shape& input_shape, int64_t ndim) const;

  std::optional<Shape> declared_input_shape_;
  std::optional<int64_t> declared_batch_size_;
  DType dtype_ = DType::f32;

 private:
  std::string name_;
  std::optional<Shape> input_shape_;
  std::optional<Shape> output_shape_;
  std::deque<Weight> weights_;  // a deque keeps Weight* stable
};

// The common fluent options, returning the concrete layer so chains keep their type:
// LSTM(64).return_sequences(true).input_shape({30, 1}). `Base` is Layer or a shared
// implementation derived from it (Recurrent for SimpleRNN, LSTM and GRU).
template <typename Derived, typename Base = Layer>
class LayerBase : public Base {
 public:
  Derived& input_shape(const Shape& shape) {
    this->declared_input_shape_ = shape;
    return self();
  }
  Derived& batch_size(int64_t size) {
    WEFT_CHECK(size > 0, "{}: batch_size must be positive, got {}", this->type_name(), size);
    this->declared_batch_size_ = size;
    return self();
  }
  Derived& dtype(DType weight_dtype) {
    this->dtype_ = weight_dtype;
    return self();
  }
  Derived& name(const std::string& layer_name) {
    this->set_name(layer_name);
    return self();
  }
  using Layer::dtype;
  using Layer::input_shape;
  using Layer::name;
  std::unique_ptr<Layer> clone() const override {
    return std::make_unique<Derived>(static_cast<const Derived&>(*this));
  }

 protected:
  using Base::Base;
  Derived& self() { return static_cast<Derived&>(*this); }
};

// A layer given to a model: any concrete, unbuilt layer, copied in. Lets Sequential take a
// braced list (whose elements are const, hence a shared prototype that instantiate() copies).
class LayerRef {
 public:
  template <std::derived_from<Layer> L>
  LayerRef(const L& layer) : prototype_(layer.clone()) {}  // NOLINT: implicit by design
  std::unique_ptr<Layer> instantiate() const { return prototype_->clone(); }

 private:
  std::shared_ptr<const Layer> prototype_;
};

// Activations by Keras name: "linear", "relu", "sigmoid", "tanh", "softmax", "hard_sigmoid".
using Activation = Tensor (*)(const Tensor&);
Activation activation_by_name(const std::string& name);

// Keras's initialisers (float64 results).
Tensor glorot_uniform(const Shape& shape, Generator& generator);
Tensor orthogonal(const Shape& shape, Generator& generator);
Tensor uniform_initializer(const Shape& shape, double low, double high, Generator& generator);
Tensor zeros_initializer(const Shape& shape, Generator& generator);

}  // namespace weft
