#include "weft/models/recurrent.h"

#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

#include "weft/models/keras_format.h"
#include "weft/ops/ops.h"

namespace weft {

// What a cell's step needs besides its input projection and states, prepared once per call so
// that the time loop slices no weight: a slice recorded inside the loop would send a gradient
// of the whole weight's size back at every step.
class StepContext {
 public:
  StepContext(const RecurrentOptions& options, int64_t units, Tensor recurrent_kernel,
              Tensor recurrent_bias, std::vector<Tensor> dropout_masks)
      : activation(activation_by_name(options.activation)),
        recurrent_activation(activation_by_name(options.recurrent_activation)),
        units_(units),
        kernel_(std::move(recurrent_kernel)),
        bias_(std::move(recurrent_bias)),
        masks_(std::move(dropout_masks)) {}

  const Activation activation;
  const Activation recurrent_activation;

  // h · recurrent_kernel for the gate blocks [first, last), plus the recurrent bias where the
  // cell has one (GRU reset_after). With recurrent dropout, block k reads h ⊙ mask_k.
  Tensor recurrent(const Tensor& h, int64_t first, int64_t last) {
    Tensor product;
    if (masks_.empty()) {
      product = matmul(h, blocks(kernel_, first, last));
    } else {
      std::vector<Tensor> parts;
      for (int64_t k = first; k < last; ++k)
        parts.push_back(matmul(h * masks_[k], blocks(kernel_, k, k + 1)));
      product = parts.size() == 1 ? parts[0] : concat(parts, 1);
    }
    return bias_.defined() ? product + blocks(bias_, first, last) : product;
  }

 private:
  // Columns [first·units, last·units) of a weight, sliced once per call.
  const Tensor& blocks(const Tensor& weight, int64_t first, int64_t last) {
    if (first == 0 && last * units_ == weight.shape().back()) return weight;
    Tensor& slot = slices_[{weight.impl(), first, last}];
    if (!slot.defined()) slot = slice(weight, -1, first * units_, last * units_);
    return slot;
  }

  int64_t units_;
  Tensor kernel_;
  Tensor bias_;
  std::vector<Tensor> masks_;
  std::map<std::tuple<const TensorImpl*, int64_t, int64_t>, Tensor> slices_;
};

// ---- Recurrent: the time loop -------------------------------------------------------------

Recurrent::Recurrent(int64_t units) : units_(units) {
  WEFT_CHECK(units > 0,
             "Received an invalid value for argument `units`, expected a positive integer, got {}",
             units);
}

Shape Recurrent::build(const Shape& input_shape, Generator& generator) {
  expect_ndim(input_shape, 3);
  WEFT_CHECK(input_shape[1] > 0,
             "layer \"{}\": the last dimension of the inputs to a recurrent layer should be "
             "defined. Full shape received: {}",
             name(), keras_shape(input_shape));
  const int64_t width = gates() * units_;
  kernel_ = &add_weight("kernel", {input_shape[1], width}, glorot_uniform, generator);
  recurrent_kernel_ = &add_weight("recurrent_kernel", {units_, width}, orthogonal, generator);
  if (options_.use_bias) bias_ = &add_weight("bias", bias_shape(), bias_initializer(), generator);
  return options_.return_sequences ? Shape{input_shape[0], units_} : Shape{units_};
}

Tensor Recurrent::call(const Tensor& x, CallContext& context) {
  return call_with_state(x, context).output;
}

std::vector<Tensor> Recurrent::initial_states(int64_t batch,
                                              const std::vector<Tensor>& given) const {
  const Shape shape{batch, units_};
  if (!given.empty()) {
    WEFT_CHECK(static_cast<int64_t>(given.size()) == state_count(),
               "layer \"{}\" expects {} initial state tensors, got {}", name(), state_count(),
               given.size());
    std::vector<Tensor> states;
    for (const Tensor& state : given) {
      WEFT_CHECK(state.shape() == shape, "layer \"{}\": an initial state has shape {}, expected {}",
                 name(), shape_str(state.shape()), shape_str(shape));
      states.push_back(state.dtype() == dtype() ? state : cast(state, dtype()));
    }
    return states;
  }
  if (options_.stateful && !kept_states_.empty()) {
    const int64_t kept = kept_states_[0].size(0);
    WEFT_CHECK(kept == batch,
               "layer \"{}\" is stateful and holds states for batch size {}, but was called "
               "with batch size {} (call reset_states() first to change the batch size)",
               name(), kept, batch);
    return kept_states_;
  }
  return std::vector<Tensor>(state_count(), zeros(shape, {.dtype = dtype()}));
}

const std::vector<Tensor>& Recurrent::states(int64_t batch) {
  if (options_.stateful && kept_states_.empty())
    for (int64_t i = 0; i < state_count(); ++i)  // one tensor each: each is written in place
      kept_states_.push_back(zeros({batch, units_}, {.dtype = dtype()}));
  return kept_states_;
}

Tensor Recurrent::project_inputs(const Tensor& x_time_major,
                                 const std::vector<Tensor>& dropout_masks,
                                 const Tensor& ids) const {
  const int64_t steps = x_time_major.size(0), batch = x_time_major.size(1);
  const int64_t features = x_time_major.size(2), width = gates() * units_;
  const Tensor& kernel = kernel_->value;
  auto rows = [&](const Tensor& x) { return reshape(x, {steps * batch, features}); };
  Tensor projected;
  if (ids.defined()) {
    projected =
        matmul_by_id(rows(x_time_major), reshape(permute(ids, {1, 0}), {steps * batch}), kernel);
  } else if (dropout_masks.empty()) {
    projected = matmul(rows(x_time_major), kernel);
  } else {
    // Keras: gate k reads x ⊙ mask_k, so each gate block gets its own product.
    std::vector<Tensor> parts;
    for (int64_t k = 0; k < gates(); ++k)
      parts.push_back(matmul(rows(x_time_major * dropout_masks[k]),
                             slice(kernel, 1, k * units_, (k + 1) * units_)));
    projected = parts.size() == 1 ? parts[0] : concat(parts, 1);
  }
  if (bias_ != nullptr) {
    const Tensor& bias = bias_->value;
    projected = projected + (bias.dim() == 2 ? reshape(slice(bias, 0, 0, 1), {width}) : bias);
  }
  return reshape(projected, {steps, batch, width});
}

RecurrentOutput Recurrent::call_with_state(const Tensor& x_in, CallContext& context,
                                           const std::vector<Tensor>& initial_state) {
  const int64_t features = input_shape()[1];  // throws when not built
  WEFT_CHECK(x_in.dim() == 3 && x_in.size(2) == features && x_in.size(1) > 0,
             "layer \"{}\": expected inputs of shape (batch, timesteps, {}), got {}", name(),
             features, shape_str(x_in.shape()));
  const int64_t batch = x_in.size(0), steps = x_in.size(1), width = gates() * units_;
  const Tensor x = x_in.dtype() == dtype() ? x_in : cast(x_in, dtype());
  std::vector<Tensor> states = initial_states(batch, initial_state);

  // Keras draws the dropout masks once per call and reuses them at every step.
  auto draw_masks = [&](double rate, int64_t size) {
    std::vector<Tensor> masks;
    if (context.training && rate > 0)
      for (int64_t k = 0; k < gates(); ++k)
        masks.push_back(dropout_mask({batch, size}, dtype(), rate, *context.generator));
    return masks;
  };
  const std::vector<Tensor> input_masks = draw_masks(options_.dropout, features);
  Tensor recurrent_bias;
  if (bias_ != nullptr && bias_->value.dim() == 2)
    recurrent_bias = reshape(slice(bias_->value, 0, 1, 2), {width});
  StepContext step_context(options_, units_, recurrent_kernel_->value, recurrent_bias,
                           draw_masks(options_.recurrent_dropout, units_));

  // Time-major, so that one step's projection is a contiguous (batch, width) view.
  // An Embedding's output as it is: its rows times the kernel once per distinct id.
  const bool embedded = input_masks.empty() && x_in.impl() == context.embedded.output.impl();
  const Tensor projected = project_inputs(permute(x, {1, 0, 2}), input_masks,
                                          embedded ? context.embedded.ids : Tensor());
  Tensor mask;  // (steps, batch, 1)
  if (context.mask.defined()) {
    WEFT_CHECK(context.mask.shape() == (Shape{batch, steps}),
               "layer \"{}\": the mask has shape {}, expected {}", name(),
               shape_str(context.mask.shape()), shape_str(Shape{batch, steps}));
    mask = reshape(permute(context.mask.detach(), {1, 0}), {steps, batch, 1});
  }
  const Tensor zero = scalar(0, dtype());
  Tensor output = zeros({batch, units_}, {.dtype = dtype()});  // before the first real step
  std::vector<Tensor> outputs;
  for (int64_t i = 0; i < steps; ++i) {
    const int64_t t = options_.go_backwards ? steps - 1 - i : i;
    std::vector<Tensor> next =
        step(reshape(slice(projected, 0, t, t + 1), {batch, width}), states, step_context);
    if (mask.defined()) {
      // A masked step keeps the states and repeats the previous output (or gives zeros).
      const Tensor real = reshape(slice(mask, 0, t, t + 1), {batch, 1});
      output = where(real, next[0], zero_output_for_mask_ ? zero : output);
      for (size_t s = 0; s < states.size(); ++s) states[s] = where(real, next[s], states[s]);
    } else {
      output = next[0];
      states = std::move(next);
    }
    if (options_.return_sequences) outputs.push_back(output);
  }

  RecurrentOutput result;
  if (options_.return_sequences) {
    if (reverse_sequence_output_) std::reverse(outputs.begin(), outputs.end());
    result.output = stack(outputs, 1);
  } else {
    result.output = output;
    context.mask = Tensor();  // the time axis is gone
  }
  if (options_.stateful) {
    // The new states go back to the step code, which stores them into the kept ones (a captured
    // step's inputs); they are not assigned here, where the tape may still need the old values
    // for backward.
    for (size_t i = 0; i < kept_states_.size(); ++i)
      context.new_states.push_back({.state = kept_states_[i], .value = states[i]});
    if (states[0].is_meta()) {
      // Nothing was computed: the kept states stay, and the compiled step writes into them.
      WEFT_CHECK(!kept_states_.empty(),
                 "layer \"{}\" is stateful: its states must exist (Layer::states) before a "
                 "capture without values, which cannot make them",
                 name());
    } else {
      // Copies, so that a compiled step can overwrite them in place without touching the outputs.
      std::vector<Tensor> kept;
      for (const Tensor& state : states) kept.push_back(state.detach().copy());
      kept_states_ = std::move(kept);
    }
  }
  if (options_.return_state) result.states = std::move(states);
  return result;
}

// ---- The cells ----------------------------------------------------------------------------

std::vector<Tensor> SimpleRNN::step(const Tensor& projected_input,
                                    const std::vector<Tensor>& states, StepContext& context) const {
  return {context.activation(projected_input + context.recurrent(states[0], 0, 1))};
}

Initializer LSTM::bias_initializer() const {
  if (!unit_forget_bias_) return zeros_initializer;
  return [units = units()](const Shape&, Generator&) {
    const TensorOptions f64{.dtype = DType::f64};
    return concat({zeros({units}, f64), ones({units}, f64), zeros({2 * units}, f64)}, 0);
  };
}

std::vector<Tensor> LSTM::step(const Tensor& projected_input, const std::vector<Tensor>& states,
                               StepContext& context) const {
  const std::vector<Tensor> z =
      split(projected_input + context.recurrent(states[0], 0, 4), 4, 1);  // i, f, c, o
  const Activation gate = context.recurrent_activation;
  const Tensor c = gate(z[1]) * states[1] + gate(z[0]) * context.activation(z[2]);
  return {gate(z[3]) * context.activation(c), c};
}

Shape GRU::bias_shape() const { return reset_after_ ? Shape{2, 3 * units()} : Shape{3 * units()}; }

std::vector<Tensor> GRU::step(const Tensor& projected_input, const std::vector<Tensor>& states,
                              StepContext& context) const {
  const Tensor& h = states[0];
  const std::vector<Tensor> x = split(projected_input, 3, 1);  // z, r, h blocks
  // reset_after: all three recurrent blocks at once; otherwise only z and r, since the h
  // block reads r ⊙ h.
  const std::vector<Tensor> rec = reset_after_ ? split(context.recurrent(h, 0, 3), 3, 1)
                                               : split(context.recurrent(h, 0, 2), 2, 1);
  const Tensor z = context.recurrent_activation(x[0] + rec[0]);
  const Tensor r = context.recurrent_activation(x[1] + rec[1]);
  const Tensor candidate =
      context.activation(reset_after_ ? x[2] + r * rec[2] : x[2] + context.recurrent(r * h, 2, 3));
  return {z * h + (1.0 - z) * candidate};
}

// ---- Bidirectional ------------------------------------------------------------------------

namespace {
std::unique_ptr<Recurrent> clone_recurrent(const Recurrent& layer) {
  return std::unique_ptr<Recurrent>(static_cast<Recurrent*>(layer.clone().release()));
}
}  // namespace

Bidirectional::Bidirectional(const Recurrent& layer, const std::string& mode)
    : forward_(clone_recurrent(layer)), backward_(clone_recurrent(layer)) {
  merge_mode(mode);
  declared_input_shape_ = layer.declared_input_shape();
  declared_batch_size_ = layer.declared_batch_size();
  dtype_ = layer.dtype();
  backward_->options_.go_backwards = !backward_->options_.go_backwards;
  backward_->reverse_sequence_output_ = true;
  // Keras: zeros at masked steps when the sequences are merged, so padding merges to zero.
  forward_->zero_output_for_mask_ = backward_->zero_output_for_mask_ =
      layer.options().return_sequences;
}

Bidirectional::Bidirectional(const Bidirectional& other)
    : LayerBase(other),
      merge_mode_(other.merge_mode_),
      forward_(clone_recurrent(*other.forward_)),
      backward_(clone_recurrent(*other.backward_)) {}

Bidirectional& Bidirectional::merge_mode(const std::string& mode) {
  WEFT_CHECK(mode == "concat" || mode == "sum" || mode == "mul" || mode == "ave",
             "Bidirectional: invalid merge mode \"{}\". Merge mode should be one of \"sum\", "
             "\"mul\", \"ave\", \"concat\"",
             mode);
  merge_mode_ = mode;
  return *this;
}

Shape Bidirectional::build(const Shape& input_shape, Generator& generator) {
  expect_ndim(input_shape, 3);
  const std::string inner = forward_->name().empty() ? forward_->base_name() : forward_->name();
  forward_->set_name("forward_" + inner);
  backward_->set_name("backward_" + inner);
  forward_->dtype_ = backward_->dtype_ = dtype_;
  Shape output = forward_->build_for(input_shape, generator);
  backward_->build_for(input_shape, generator);
  if (merge_mode_ == "concat") output.back() *= 2;
  return output;
}

Tensor Bidirectional::call(const Tensor& x, CallContext& context) {
  return call_with_state(x, context).output;
}

RecurrentOutput Bidirectional::call_with_state(const Tensor& x, CallContext& context,
                                               const std::vector<Tensor>& initial_state) {
  const size_t half = initial_state.size() / 2;
  WEFT_CHECK(initial_state.size() % 2 == 0,
             "layer \"{}\" expects its copies' initial states (forward, then backward), got {} "
             "tensors",
             name(), initial_state.size());
  // Both copies read the mask; a copy without return_sequences clears it (the time axis is gone).
  const Tensor mask = context.mask;
  RecurrentOutput f =
      forward_->call_with_state(x, context, {initial_state.begin(), initial_state.begin() + half});
  context.mask = mask;
  RecurrentOutput b =
      backward_->call_with_state(x, context, {initial_state.begin() + half, initial_state.end()});

  RecurrentOutput result;
  if (merge_mode_ == "concat")
    result.output = concat({f.output, b.output}, -1);
  else if (merge_mode_ == "sum")
    result.output = f.output + b.output;
  else if (merge_mode_ == "mul")
    result.output = f.output * b.output;
  else
    result.output = (f.output + b.output) / 2.0;
  result.states = std::move(f.states);
  for (Tensor& state : b.states) result.states.push_back(std::move(state));
  return result;
}

std::vector<Weight*> Bidirectional::weights() {
  std::vector<Weight*> all = forward_->weights();
  for (Weight* w : backward_->weights()) all.push_back(w);
  return all;
}

const std::vector<Tensor>& Bidirectional::states(int64_t batch) {
  both_states_ = forward_->states(batch);
  const std::vector<Tensor>& backward = backward_->states(batch);
  both_states_.insert(both_states_.end(), backward.begin(), backward.end());
  return both_states_;
}

void Bidirectional::reset_states() {
  forward_->reset_states();
  backward_->reset_states();
}

}  // namespace weft
