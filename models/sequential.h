// Sequential: a stack of layers with Keras's build, summary, compile, fit, evaluate, predict
// and weight files.
#pragma once

#include <array>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "weft/compiler/graph.h"
#include "weft/models/layer.h"
#include "weft/models/metrics.h"
#include "weft/models/training.h"
#include "weft/ops/ops.h"

namespace weft {

class CompiledStep;
class StepCache;
class Sequential;

// A model's predict_on_batch for batches of one shape and dtype, bound once (made by
// Sequential::predictor): for a stream of small batches, such as a stateful model fed one time
// step a call, where the call around the compiled step would cost a good part of the step. Each
// call computes what predict_on_batch(x) would, stateful layers carrying their states on, with
// the model's weights and states as they are at that call: the predictor sees weights changed in
// place (training, load_weights), tensors put in their place and reset_states, and binds again
// (compiling again only where predict_on_batch would). It refers to its model, so it must not
// outlive it, and like the model it is for one thread at a time.
class Predictor {
 public:
  Predictor(Predictor&&) noexcept;
  Predictor& operator=(Predictor&&) noexcept;
  ~Predictor();

  // predict_on_batch(x); throws weft::Error for x of another shape or dtype than the predictor's.
  // The result is written again by the next call once the caller has let go of it.
  Tensor operator()(const Tensor& x);
  const Shape& input_shape() const { return input_shape_; }  // the batch's, batch size first
  DType dtype() const { return dtype_; }

 private:
  friend class Sequential;
  struct Bound;  // models/steps.cpp
  Predictor(Sequential& model, Shape input_shape, DType dtype);

  Sequential* model_;
  Shape input_shape_;
  DType dtype_;
  std::unique_ptr<Bound> bound_;  // none until a call with jit_compile, or after a change
};

// False when the environment sets WEFT_JIT_COMPILE=0: every model then runs eagerly.
bool jit_compile_default();

// The steps a model compiles:
//   train:     forward, loss, backward and the optimizer's update, in one step;
//   infer:     forward, including one streaming step of stateful layers;
//   gradients: forward, loss and backward on rows of a batch: the rows' share of the batch's
//              loss (their mean loss times their fraction of the batch), the predictions, then
//              the gradient of that share for each trainable weight that gets one, named
//              "gradient/N/LAYER/WEIGHT" (N: the weight's place in weights());
//   apply:     the optimizer's update from the sum of the shares' gradients, given as inputs
//              "part0/gradient/N/LAYER/WEIGHT", "part1/...".
// fit() runs a batch as train, or, where the batch splits (its halves at once on two threads),
// as gradients on each half, then apply.
enum class StepKind { train, infer, gradients, apply };

// Tensors by name: a step's inputs or outputs.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Sequential {
 public:
  Sequential(std::initializer_list<LayerRef> layers = {}, std::string name = "sequential");

  void add(const LayerRef& layer);
  // Builds every layer for inputs of `input_shape` (batch excluded). Done automatically from
  // the first layer's input_shape, or from the first batch seen.
  void build(const Shape& input_shape);
  bool built() const;
  const std::string& name() const { return name_; }
  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  Layer& layer(const std::string& name) const;
  std::vector<Weight*> weights() const;
  // For deployment, as Keras's Model.quantize: mode "float16" rounds every floating-point weight
  // to the nearest float16 value (TFLite's float16 quantization), "bfloat16" to the nearest
  // bfloat16 value (3 bits fewer, float32's range), each kept in the weight's dtype. Eager and
  // compiled steps compute with those values as before; a compiled step that reads a float32
  // weight in products of one row (a streaming step) keeps its packed copy in 2 bytes a value in
  // a build for AVX-512, which halves the bytes read at the same results (bfloat16's copy reads
  // fastest). Throws, changing nothing, for another mode, an unbuilt model, or a weight beyond
  // the mode's range (float16's 65504). Training afterwards moves the weights off the rounded
  // values.
  void quantize(const std::string& mode_name);
  // Layer::weight_path of each trainable weight, in weights() order ("dense/kernel"): the names
  // of the optimizer's slots (Keras's [w.name for w in model.trainable_weights]).
  std::vector<std::string> trainable_weight_paths() const;
  int64_t count_params() const;
  const Shape& output_shape() const;

  // Keras's table: layer (type), output shape, params; then the totals.
  std::string summary_string() const;
  void summary() const;  // to stdout

  // The forward pass through every layer (builds on first use).
  Tensor call(const Tensor& x, bool training = false);
  void reset_states();

  // Training (models/fit.cpp).
  // metrics: Keras names or metric objects, {"accuracy", AUC{.curve = "PR"}} (models/metrics.h).
  void compile(Optimizer optimizer, const std::string& loss,
               const std::vector<MetricSpec>& metrics = {});
  void compile(const std::string& optimizer, const std::string& loss,
               const std::vector<MetricSpec>& metrics = {});
  History fit(const Tensor& x, const Tensor& y, const FitOptions& options = {});
  Logs evaluate(const Tensor& x, const Tensor& y, const EvaluateOptions& options = {});
  Tensor predict(const Tensor& x, int64_t batch_size = 32);
  // One inference step on one batch, as Keras's predict_on_batch (a stateful model streams).
  Tensor predict_on_batch(const Tensor& x);
  // predict_on_batch bound to batches of `batch_input_shape` (batch size first) and `dtype`, for
  // a stream of calls (Predictor). Builds the model for that shape if needed and, with
  // jit_compile, compiles its step now, so that the first call is as fast as the next; throws, as
  // predict_on_batch would, for a shape the model does not take.
  Predictor predictor(const Shape& batch_input_shape, DType dtype = DType::f32);
  // Set by callbacks to end fit() after the current epoch (EarlyStopping) or batch
  // (TerminateOnNaN).
  bool stop_training = false;
  // As Keras's jit_compile: fit, evaluate and predict run each step as native code compiled for
  // its batch shape (captured without computing anything, and compiled, when the first batch of
  // a shape arrives; that batch then runs compiled too), or, when false, on the eager tape.
  // Its default is true unless the environment sets WEFT_JIT_COMPILE=0.
  bool jit_compile = jit_compile_default();

  // A step that fit() or predict() compiles, recorded for a batch like x (and y, for train and
  // gradients; gradients records the whole batch as its one part, apply one part's gradients).
  // Recording computes nothing (CaptureMode::meta): the weights, the optimizer and the default
  // generator stay as they were. Builds the model (and the optimizer's slots) first.
  Graph capture_step(StepKind kind, const Tensor& x, const Tensor& y = {});
  // The steps compiled so far, by kind and shapes.
  const StepCache& compiled_steps() const;

  // Weight files (models/weights_file.cpp): written to a temporary file and renamed, so a
  // crash never leaves a half-written file; loading checks every layer's names and shapes.
  void save_weights(const std::string& path) const;
  void load_weights(const std::string& path);
  // The whole model (Keras's config and the weights) in the TensorFlow.js Layers format that
  // Keras and TF.js load (models/tfjs_model.h has load_model): `path` ending in .json is the
  // model.json, its shards written beside it; any other path is a folder for model.json and
  // group1-shard1of1.bin. Each file is written to a temporary file and renamed, the shards first.
  void save_model(const std::string& path) const;

  struct TrainingState;  // the compiled optimizer, loss and metrics (models/fit.cpp)

 private:
  friend class Predictor;
  // Builds the model for batches of `batch_shape` (batch size first) if it is not built, then
  // checks that it takes them: Keras's message where it does not.
  void build_for_batches(const Shape& batch_shape);
  // A predictor's binding of the inference step on batches like x: the whole batch's compiled
  // step with the model's inputs (none where the batch runs as halves; then calls run as
  // predict_on_batch). Compiles the step if new.
  std::unique_ptr<Predictor::Bound> bind_inference(const Tensor& x);
  // Whether the model's compiled steps and the inputs of its inference step are still those of
  // `bound`.
  bool still_bound(const Predictor::Bound& bound);
  Shape input_shape_for_build() const;
  struct StepInputs;
  // Calls add(name, tensor) for each input of a step of `kind`, in the step's order: x, y (train,
  // gradients), `random` (the generator's state; not for apply), each layer's weights and (not
  // for apply) states, and the optimizer's variables (train, apply). `name` makes the input's
  // name when called (a step run again by its inputs' shapes needs none).
  template <typename Add>
  void for_each_step_input(StepKind kind, const Tensor& x, const Tensor& y, const Tensor& random,
                           Add&& add);
  // `part`: the rows x holds of a larger batch (gradients and infer).
  StepInputs step_inputs(StepKind kind, const Tensor& x, const Tensor& y,
                         std::optional<BatchRows> part = {});
  // An inference step on x through the binding of the last inference call (bound again where
  // x's shape or dtype, or the model's tensors, changed): {y_pred}, or nothing where the batch
  // runs as halves.
  std::optional<std::vector<Tensor>> run_bound_inference(const Tensor& x);
  // Calls `visit` with each trainable weight and the name of its gradient (StepKind::gradients).
  void for_each_trainable(
      const std::function<void(const std::string& gradient, Weight& weight)>& visit) const;
  // The apply step's inputs: the gradients of each part (as the gradients step names them),
  // then the weights and the optimizer's variables.
  StepInputs apply_inputs(const std::vector<NamedTensors>& part_gradients);
  // The step's forward pass (and loss, for train) as ordinary code on the tape: run eagerly, or
  // recorded by a capture.
  NamedTensors tape_step(StepKind kind, const Tensor& x, const Tensor& y);
  // A gradients step on the tape (StepKind::gradients's outputs, for rows `part` of a batch);
  // the weights' grads are cleared again.
  NamedTensors tape_gradients(const Tensor& x, const Tensor& y, const BatchRows& part);
  // An apply step on the tape: each trainable weight's grad set to the sum of the parts'
  // gradients, then the optimizer's update.
  void tape_apply(const std::vector<NamedTensors>& part_gradients);
  // One step, compiled (from the cache, or captured and compiled now) or eager: train returns
  // {loss, y_pred}, infer {y_pred}. `check_loss` sees the loss before any weight changes.
  std::vector<Tensor> run_step(StepKind kind, const Tensor& x, const Tensor& y,
                               const std::function<void(double)>& check_loss = {});
  // Backward and the optimizer's update, after `check_loss`.
  void train_update(const Tensor& loss, const std::function<void(double)>& check_loss);
  // Builds the model and the optimizer's slots if needed: a step's inputs must exist before it
  // is captured, or they would be made inside it and frozen into the compiled step.
  void prepare_step(StepKind kind, const Tensor& x);
  struct RecordedStep;
  // Captures one step without computing anything (CaptureMode::meta).
  RecordedStep record_step(const Tensor& x, const Tensor& y, const StepInputs& inputs);
  // The compiled step for `inputs`: from the cache, or captured and compiled now.
  const CompiledStep& compiled_step(const Tensor& x, const Tensor& y, const StepInputs& inputs);
  // That step run on `inputs`, the default generator advanced past its draws: its outputs into
  // `outputs`, in the order of the returned step's graph().outputs.
  const CompiledStep& run_compiled(const Tensor& x, const Tensor& y, const StepInputs& inputs,
                                   std::vector<Tensor>& outputs);
  struct Halves;
  // Where a train or infer step runs as compiled steps on the two halves of the batch at once
  // (where that pays): the halves' inputs and steps, compiled now if new; none where it does not.
  // `key` is the whole batch's step key; `rows_of`: the rows x holds of a larger batch (the whole
  // of it on one machine).
  std::optional<Halves> halves(StepKind kind, const Tensor& x, const Tensor& y,
                               const std::string& key, BatchRows rows_of);
  // That step run as its halves, where it runs so: each half's named outputs (gradients', or
  // infer's).
  std::optional<std::array<NamedTensors, 2>> run_in_halves(StepKind kind, const Tensor& x,
                                                           const Tensor& y, const std::string& key,
                                                           BatchRows rows_of);
  // One training step of a batch shared by the ranks of `cluster`: this rank's rows of it,
  // `rows_of` the global batch, computed as a gradients step (or two halves, or on the tape);
  // then the shares of the loss and the gradients summed across the ranks with one allreduce
  // over a fused buffer, `check_loss` called with the global loss, and, if it is finite, the
  // same optimizer update on every rank (an apply step, or the tape's optimizer). Returns the
  // global loss and this rank's predictions. Every trainable weight is updated, with zeros for
  // one that no rank's rows gave a gradient.
  std::vector<Tensor> train_share(const Tensor& x, const Tensor& y, BatchRows rows_of,
                                  const class Cluster& cluster,
                                  const std::function<void(double)>& check_loss);
  // train's {loss, y_pred} once the parts' shares are in: `check_loss` called with the loss,
  // then, if it is finite, the optimizer's update from the sum of the parts' gradients (an apply
  // step, or on the tape).
  std::vector<Tensor> apply_gradients(const Tensor& loss, const Tensor& y_pred,
                                      const std::vector<NamedTensors>& part_gradients,
                                      const std::function<void(double)>& check_loss);
  std::string name_;
  std::vector<std::unique_ptr<Layer>> layers_;
  // Shared only so that TrainingState can stay incomplete here; a model is never copied.
  std::shared_ptr<TrainingState> training_;
  struct CompiledSteps;
  std::shared_ptr<CompiledSteps> compiled_;
};

}  // namespace weft
