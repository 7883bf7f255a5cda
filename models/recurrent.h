// Recurrent layers with Keras semantics: SimpleRNN, LSTM, GRU and Bidirectional.
//
// One time loop (Recurrent) serves the three cells; each cell contributes only its step maths,
// composed from ops, so the tape differentiates it. The input projection x · kernel + bias is
// computed for all time steps in one GEMM before the loop (exact, and what the compiler's
// hoisting pass does too); the loop then adds h · recurrent_kernel per step.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "weft/models/layer.h"

namespace weft {

class Bidirectional;
class StepContext;  // what a cell's step sees besides its inputs; defined in recurrent.cpp

struct RecurrentOutput {
  Tensor output;               // what call() returns: (batch, units) or (batch, timesteps, units)
  std::vector<Tensor> states;  // final states, (batch, units) each: {h}, or {h, c} for LSTM
};

// Keras's recurrent-layer keyword arguments, with Keras's defaults.
struct RecurrentOptions {
  bool return_sequences = false;  // every step's output (batch, timesteps, units), not the last
  bool return_state = false;      // call_with_state() also returns the final states
  bool go_backwards = false;      // read the sequence from its end; outputs in reading order
  bool stateful = false;          // final states are the next call's initial states
  double dropout = 0;             // input dropout rate while training, one mask per gate
  double recurrent_dropout = 0;   // dropout on h, one mask per gate
  std::string activation = "tanh";
  std::string recurrent_activation = "sigmoid";  // the gates of LSTM and GRU
  bool use_bias = true;
};

// The time loop shared by SimpleRNN, LSTM and GRU. Input (batch, timesteps, features); with a
// mask in the CallContext, masked steps keep the states and repeat the previous output.
class Recurrent : public Layer {
 public:
  int64_t units() const { return units_; }
  const RecurrentOptions& options() const { return options_; }

  Shape build(const Shape& input_shape, Generator& generator) override;
  // The output alone. Inside a Sequential, return_state has no effect: the next layer takes one
  // tensor, so the states are only available through call_with_state().
  Tensor call(const Tensor& x, CallContext& context) override;
  // Keras's layer(x, initial_state=[...]): `initial_state` empty means zeros (or, when
  // stateful, the states the previous call left). The states are returned when return_state.
  RecurrentOutput call_with_state(const Tensor& x, CallContext& context,
                                  const std::vector<Tensor>& initial_state = {});
  // Stateful layers forget their states: the next call starts from zeros, at any batch size.
  void reset_states() override { kept_states_.clear(); }
  const std::vector<Tensor>& states(int64_t batch) override;

 protected:
  explicit Recurrent(int64_t units);  // throws for units <= 0

  // ---- What each cell defines ----
  // The number of gate blocks of units columns in the kernels: 1, 4 (i, f, c, o), 3 (z, r, h).
  virtual int64_t gates() const = 0;
  // 1 (h), or 2 (h, c) for LSTM. The first state is the output.
  virtual int64_t state_count() const { return 1; }
  // (gates·units); GRU with reset_after has (2, gates·units): input bias, recurrent bias.
  virtual Shape bias_shape() const { return {gates() * units_}; }
  virtual Initializer bias_initializer() const { return zeros_initializer; }
  // One time step: the new states from the step's input projection (batch, gates·units; the
  // input bias included) and the previous states.
  virtual std::vector<Tensor> step(const Tensor& projected_input, const std::vector<Tensor>& states,
                                   StepContext& context) const = 0;

  RecurrentOptions options_;

 private:
  friend class Bidirectional;

  // x's rows times the kernel, plus the bias: by gate where there are dropout masks, and once per
  // distinct id where `ids` (batch, timesteps) are those an Embedding looked x up by.
  Tensor project_inputs(const Tensor& x_time_major, const std::vector<Tensor>& dropout_masks,
                        const Tensor& ids) const;
  std::vector<Tensor> initial_states(int64_t batch, const std::vector<Tensor>& given) const;

  int64_t units_;
  // Set by Bidirectional on its copies: zeros at masked steps (Keras's zero_output_for_mask),
  // and the returned sequence in time order rather than reading order.
  bool zero_output_for_mask_ = false;
  bool reverse_sequence_output_ = false;
  Weight* kernel_ = nullptr;
  Weight* recurrent_kernel_ = nullptr;
  Weight* bias_ = nullptr;
  std::vector<Tensor> kept_states_;  // stateful: the last call's final states, detached
};

// The fluent recurrent options, returning the concrete layer.
template <typename Derived>
class RecurrentLayer : public LayerBase<Derived, Recurrent> {
 public:
  Derived& return_sequences(bool on) { return set(&RecurrentOptions::return_sequences, on); }
  Derived& return_state(bool on) { return set(&RecurrentOptions::return_state, on); }
  Derived& go_backwards(bool on) { return set(&RecurrentOptions::go_backwards, on); }
  Derived& stateful(bool on) { return set(&RecurrentOptions::stateful, on); }
  Derived& dropout(double rate) {
    return set(&RecurrentOptions::dropout, checked_rate("dropout", rate));
  }
  Derived& recurrent_dropout(double rate) {
    return set(&RecurrentOptions::recurrent_dropout, checked_rate("recurrent_dropout", rate));
  }
  Derived& activation(const std::string& name) {
    activation_by_name(name);  // rejects unknown names now, not at the first call
    return set(&RecurrentOptions::activation, name);
  }
  // LSTM and GRU only: SimpleRNN has no gates.
  Derived& recurrent_activation(const std::string& name) requires Derived::gated {
    activation_by_name(name);
    return set(&RecurrentOptions::recurrent_activation, name);
  }
  Derived& use_bias(bool on) { return set(&RecurrentOptions::use_bias, on); }

 protected:
  using LayerBase<Derived, Recurrent>::LayerBase;

 private:
  template <typename T, typename V>
  Derived& set(T RecurrentOptions::*option, V value) {
    this->options_.*option = std::move(value);
    return this->self();
  }
  double checked_rate(const char* option, double rate) const {
    WEFT_CHECK(0 <= rate && rate < 1, "{}: {} must be in [0, 1), got {}", this->type_name(), option,
               rate);
    return rate;
  }
};

// h_t = activation(x_t · kernel + h_{t-1} · recurrent_kernel + bias).
class SimpleRNN : public RecurrentLayer<SimpleRNN> {
 public:
  static constexpr bool gated = false;
  explicit SimpleRNN(int64_t units) : RecurrentLayer(units) {}
  std::string type_name() const override { return "SimpleRNN"; }

 protected:
  int64_t gates() const override { return 1; }
  std::vector<Tensor> step(const Tensor& projected_input, const std::vector<Tensor>& states,
                           StepContext& context) const override;
};

// Gate blocks (i, f, c, o); states (h, c).
class LSTM : public RecurrentLayer<LSTM> {
 public:
  static constexpr bool gated = true;
  explicit LSTM(int64_t units) : RecurrentLayer(units) {}
  // Initialise the forget gate's bias to 1 (Jozefowicz et al.). Default true.
  LSTM& unit_forget_bias(bool on) {
    unit_forget_bias_ = on;
    return *this;
  }
  bool unit_forget_bias() const { return unit_forget_bias_; }
  std::string type_name() const override { return "LSTM"; }

 protected:
  int64_t gates() const override { return 4; }
  int64_t state_count() const override { return 2; }
  Initializer bias_initializer() const override;
  std::vector<Tensor> step(const Tensor& projected_input, const std::vector<Tensor>& states,
                           StepContext& context) const override;

 private:
  bool unit_forget_bias_ = true;
};

// Gate blocks (z, r, h); h_t = z ⊙ h_{t-1} + (1 - z) ⊙ ĥ.
class GRU : public RecurrentLayer<GRU> {
 public:
  static constexpr bool gated = true;
  explicit GRU(int64_t units) : RecurrentLayer(units) {}
  // true (Keras 2's default, cuDNN's and PyTorch's GRU): the reset gate multiplies
  // h · recurrent_kernel + recurrent bias, and the bias is (2, 3·units). false: it multiplies h
  // before the product, and the bias is (3·units).
  GRU& reset_after(bool on) {
    reset_after_ = on;
    return *this;
  }
  bool reset_after() const { return reset_after_; }
  std::string type_name() const override { return "GRU"; }

 protected:
  int64_t gates() const override { return 3; }
  Shape bias_shape() const override;
  std::vector<Tensor> step(const Tensor& projected_input, const std::vector<Tensor>& states,
                           StepContext& context) const override;

 private:
  bool reset_after_ = true;
};

// Runs a copy of a recurrent layer forwards and another backwards over the sequence and merges
// their outputs: "concat" (default), "sum", "mul" or "ave". With return_sequences the backward
// copy's outputs are put back in time order, so step t of both copies lines up. The copies are
// named forward_NAME and backward_NAME after the wrapped layer, and have their own weights.
class Bidirectional : public LayerBase<Bidirectional> {
 public:
  explicit Bidirectional(const Recurrent& layer, const std::string& mode = "concat");
  Bidirectional(const Bidirectional& other);
  Bidirectional& merge_mode(const std::string& mode);
  const std::string& merge_mode() const { return merge_mode_; }

  std::string type_name() const override { return "Bidirectional"; }
  Shape build(const Shape& input_shape, Generator& generator) override;
  Tensor call(const Tensor& x, CallContext& context) override;
  // initial_state: the forward copy's states, then the backward copy's; the returned states
  // likewise (when the wrapped layer has return_state).
  RecurrentOutput call_with_state(const Tensor& x, CallContext& context,
                                  const std::vector<Tensor>& initial_state = {});
  std::vector<Weight*> weights() override;
  void reset_states() override;
  const std::vector<Tensor>& states(int64_t batch) override;

  Recurrent& forward_layer() { return *forward_; }
  Recurrent& backward_layer() { return *backward_; }

 private:
  std::string merge_mode_;
  std::unique_ptr<Recurrent> forward_;
  std::unique_ptr<Recurrent> backward_;
  // What states() last gave: the forward copy's states, then the backward copy's.
  std::vector<Tensor> both_states_;
};

}  // namespace weft
