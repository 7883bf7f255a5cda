// The steps fit(), evaluate() and predict() run: captured (without computing anything) on the
// first batch of each shape, compiled, and served from a cache (Sequential::jit_compile).
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "weft/compiler/compile.h"
#include "weft/models/cluster.h"
#include "weft/models/training_state.h"
#include "weft/ops/ops.h"
#include "weft/runtime/op.h"
#include "weft/runtime/thread_pool.h"

namespace weft {

// A binding of a model's inference step on batches of one shape and dtype (Sequential::
// bind_inference): a predictor's, and predict_on_batch's for repeated calls.
struct Predictor::Bound {
  // The model's compiled steps when bound, known by their control block, which this keeps from
  // being reused while letting the steps go with the model's last use of them.
  std::weak_ptr<const void> steps;
  std::optional<StepBinding> binding;  // none where the batch runs as halves
  Shape x_shape = {};                  // the batches it takes
  DType x_dtype = DType::f32;
  size_t x_input = 0, random_input = 0;
  // Where the binding's other inputs come from, so that a call checks them without asking each
  // layer for lists: each weight's input, and the first input of each layer that keeps states
  // (its others follow).
  std::vector<std::pair<const Weight*, size_t>> weight_inputs = {};
  std::vector<std::pair<Layer*, size_t>> state_inputs = {};
  uint64_t counters = 0;  // the random counters a call takes
  std::vector<Tensor> outputs = {};

  // An inference call on x through the binding: the step's outputs, written again by the next
  // call once the caller has let go of them.
  const std::vector<Tensor>& run(const Tensor& x);
};

struct Sequential::CompiledSteps {
  StepCache cache;
  // What recording each compiled step found, by its cache key.
  struct Draws {
    uint64_t counters = 0;  // the random counters a run takes (the whole batch's, for a part)
    bool by_row = true;     // RandomStateScope::drawn_by_row
  };
  std::map<std::string, Draws> draws;
  // Whether a step runs as two halves of its batch (run_in_halves), by the whole batch's cache
  // key: decided once, so that a step that does not pays for the question once.
  std::map<std::string, bool> in_halves;
  // The halves' outputs, by the whole batch's key, written again by each run (CompiledStep::run).
  std::map<std::string, std::array<std::vector<Tensor>, 2>> half_outputs;
  // The binding of the last inference call's step, which serves each next call on batches of its
  // shape and dtype while the model's weights and states are those it bound (still_bound):
  // naming the inputs, building the key and checking each input took about a tenth of a
  // streaming call (W4). Its x is let go of after each call, so the caller's batch is not held.
  std::unique_ptr<Predictor::Bound> inference;
};

// The named tensors a step reads and may write: the batch, the random state, the weights, the
// optimizer's variables (train, apply), the gradients (apply) and the states of stateful layers.
struct Sequential::StepInputs {
  StepKind kind = StepKind::train;
  std::optional<BatchRows> part = {};
  NamedTensors named = {};
  Tensor random = {};  // the generator's state, among `named` (not for apply)
  std::vector<NamedTensors> part_gradients = {};  // apply's, also among `named`
  std::string key = {};  // the kind, the part's sizes, and every input's name, dtype and shape
};

// A step captured without values, and the random counters (dropout masks) a run of it takes.
struct Sequential::RecordedStep {
  Graph graph;
  CompiledSteps::Draws draws;
};

bool jit_compile_default() {
  const char* value = std::getenv("WEFT_JIT_COMPILE");
  return value == nullptr || std::string_view(value) != "0";
}

namespace {

constexpr const char* kind_name(StepKind kind) {
  switch (kind) {
    case StepKind::train:
      return "train";
    case StepKind::infer:
      return "infer";
    case StepKind::gradients:
      return "gradients";
    case StepKind::apply:
      return "apply";
  }
  return "";
}

// A compiled step's outputs by their names in its graph.
NamedTensors named_outputs(const CompiledStep& step, const std::vector<Tensor>& outputs) {
  NamedTensors named;
  named.reserve(outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i)
    named.emplace_back(step.graph().outputs[i].name, outputs[i]);
  return named;
}

std::vector<Tensor> values(const NamedTensors& named) {
  std::vector<Tensor> tensors;
  tensors.reserve(named.size());
  for (const auto& [name, tensor] : named) tensors.push_back(tensor);
  return tensors;
}

// Empties each of a stream's outputs that its caller still holds (the tensor or its storage), so
// that the next call writes only those the caller has let go of.
void let_go_of_held(std::vector<Tensor>& outputs) {
  for (Tensor& output : outputs)
    if (output.impl_ptr().use_count() > 1 || output.impl()->storage.use_count() > 1)
      output = Tensor();
}

std::string part_gradient_name(size_t part, const std::string& gradient_name) {
  return fmt::format("part{}/{}", part, gradient_name);
}

// In bytes, not formatted: a cache hit builds the key on every batch.
std::string step_key(StepKind kind, const std::optional<BatchRows>& part,
                     const NamedTensors& named) {
  std::string key = kind_name(kind);
  if (part) {
    key += fmt::format(" rows {} of {}", part->rows, part->whole_rows);
  }
  size_t bytes = key.size();
  for (const auto& [name, tensor] : named)
    bytes += name.size() + 2 + tensor.shape().size() * sizeof(int64_t);
  key.reserve(bytes);
  for (const auto& [name, tensor] : named) {
    const Shape& shape = tensor.shape();
    key += name;  // then bytes no name holds
    key += static_cast<char>(tensor.dtype());
    key += static_cast<char>(shape.size());
    key.append(reinterpret_cast<const char*>(shape.data()), shape.size() * sizeof(int64_t));
  }
  return key;
}

}  // namespace

const std::vector<Tensor>& Predictor::Bound::run(const Tensor& x) {
  binding->set_input(x_input, x);
  if (counters > 0) write_random_state(binding->inputs()[random_input], default_generator());
  let_go_of_held(outputs);
  binding->run(outputs);
  default_generator().take(counters);
  return outputs;
}

void Sequential::for_each_trainable(
    const std::function<void(const std::string& gradient, Weight& weight)>& visit) const {
  // Numbered: a Bidirectional layer's two directions name their weights alike.
  int index = 0;
  for (const auto& layer : layers_)
    for (Weight* weight : layer->weights()) {
      if (weight->trainable)
        visit(fmt::format("gradient/{}/{}", index, layer->weight_path(*weight)), *weight);
      ++index;
    }
}

template <typename Add>
void Sequential::for_each_step_input(StepKind kind, const Tensor& x, const Tensor& y,
                                     const Tensor& random, Add&& add) {
  const bool forward = kind != StepKind::apply;
  const bool labels = kind == StepKind::train || kind == StepKind::gradients;
  const bool updates = kind == StepKind::train || kind == StepKind::apply;
  const auto literal = [](const char* name) { return [name] { return std::string(name); }; };
  if (forward) {
    add(literal("x"), x);
    if (labels) add(literal("y"), y);
    add(literal("random"), random);
  }
  for (const auto& layer : layers_) {
    for (Weight* weight : layer->weights())
      add([&] { return layer->weight_path(*weight); }, weight->value);
    if (!forward) continue;
    const std::vector<Tensor>& states = layer->states(x.size(0));
    // Concatenated, not formatted: fmt::format took a tenth of a streaming call's own cost.
    for (size_t i = 0; i < states.size(); ++i)
      add([&] { return layer->name() + "/state" + std::to_string(i); }, states[i]);
  }
  if (updates)
    for (const auto& [name, variable] : training_->state->variables(trainable_weight_paths()))
      add([&] { return "optimizer/" + name; }, variable);
}

Sequential::StepInputs Sequential::step_inputs(StepKind kind, const Tensor& x, const Tensor& y,
                                               std::optional<BatchRows> part) {
  StepInputs inputs{.kind = kind, .part = part};
  // Enough for most models' inputs (each reallocation moves every name).
  inputs.named.reserve(4 + 4 * layers_.size());
  if (kind != StepKind::apply) {
    inputs.random = random_state(default_generator());
    // Read at run time, so that every part of one size runs the same step.
    if (part) inputs.random.data<int64_t>()[2] = part->first;
  }
  for_each_step_input(kind, x, y, inputs.random, [&](const auto& name, const Tensor& tensor) {
    inputs.named.emplace_back(name(), tensor);
  });
  inputs.key = step_key(kind, part, inputs.named);
  return inputs;
}

Sequential::StepInputs Sequential::apply_inputs(const std::vector<NamedTensors>& part_gradients) {
  StepInputs inputs = step_inputs(StepKind::apply, {}, {});
  NamedTensors named;
  for (size_t part = 0; part < part_gradients.size(); ++part)
    for (const auto& [name, gradient] : part_gradients[part])
      named.emplace_back(part_gradient_name(part, name), gradient);
  inputs.named.insert(inputs.named.begin(), named.begin(), named.end());
  inputs.part_gradients = part_gradients;
  inputs.key = step_key(StepKind::apply, {}, inputs.named);
  return inputs;
}

NamedTensors Sequential::tape_step(StepKind kind, const Tensor& x, const Tensor& y) {
  if (kind == StepKind::infer) {
    NoGrad no_grad;
    return {{"y_pred", call(x, false)}};
  }
  const Tensor y_pred = call(x, true);
  const Tensor loss = training_->loss->compute(y, y_pred);
  return {{"loss", loss}, {"y_pred", y_pred.detach()}};
}

NamedTensors Sequential::tape_gradients(const Tensor& x, const Tensor& y, const BatchRows& part) {
  NamedTensors named = tape_step(StepKind::train, x, y);
  Tensor& share = named[0].second;
  if (part.rows != part.whole_rows)
    share = share * (static_cast<double>(part.rows) / part.whole_rows);
  share.backward();
  for_each_trainable([&](const std::string& gradient, const Weight& weight) {
    if (weight.value.grad().defined()) named.emplace_back(gradient, weight.value.grad());
  });
  training_->state->zero_grad();
  return named;
}

void Sequential::tape_apply(const std::vector<NamedTensors>& part_gradients) {
  for_each_trainable([&](const std::string& gradient, Weight& weight) {
    Tensor sum;
    for (const NamedTensors& part : part_gradients)
      for (const auto& [name, value] : part)
        if (name == gradient) sum = sum.defined() ? sum + value : value;
    if (sum.defined()) weight.value.set_grad(sum);
  });
  training_->state->step();
  training_->state->zero_grad();
}

void Sequential::train_update(const Tensor& loss, const std::function<void(double)>& check_loss) {
  // Checked before the update, so the weights stay those of the last finite step: a non-finite
  // loss changes nothing, as in a compiled step (CompileOptions::finite_output). A capture
  // passes no check: it has no values, and the compiled step guards itself.
  if (check_loss) {
    const double value = loss.item();
    check_loss(value);
    if (!std::isfinite(value)) return;
  }
  loss.backward();
  training_->state->step();
  training_->state->zero_grad();
}

void Sequential::prepare_step(StepKind kind, const Tensor& x) {
  WEFT_CHECK(kind == StepKind::infer || training_ != nullptr,
             "model \"{}\" must be compiled first: call compile(optimizer, loss)", name_);
  if (!built()) build(Shape(x.shape().begin() + 1, x.shape().end()));
  if (kind != StepKind::infer && !training_->state)
    training_->state.emplace(training_->optimizer, weights());
}

Sequential::RecordedStep Sequential::record_step(const Tensor& x, const Tensor& y,
                                                 const StepInputs& inputs) {
  Generator& generator = default_generator();
  const Generator before = generator;
  const auto step = [&]() -> NamedTensors {
    switch (inputs.kind) {
      case StepKind::infer:
        return tape_step(StepKind::infer, x, y);
      case StepKind::train: {
        NamedTensors named = tape_step(StepKind::train, x, y);
        train_update(named[0].second, {});
        return named;
      }
      case StepKind::gradients:
        return tape_gradients(x, y, inputs.part.value_or(BatchRows{0, x.size(0), x.size(0)}));
      case StepKind::apply:
        tape_apply(inputs.part_gradients);
        return {};
    }
    return {};
  };
  RecordedStep recorded;
  recorded.graph = capture(
      inputs.named,
      [&] {
        RandomStateScope random(generator, inputs.random, inputs.part);
        NamedTensors named = step();
        recorded.draws = {.counters = random.taken(), .by_row = random.drawn_by_row()};
        return named;
      },
      CaptureMode::meta);
  generator = before;
  return recorded;
}

const CompiledStep& Sequential::compiled_step(const Tensor& x, const Tensor& y,
                                              const StepInputs& inputs) {
  if (const CompiledStep* step = compiled_->cache.find(inputs.key)) return *step;
  // The first batch of this shape: captured without computing anything, compiled, then run
  // like every later batch.
  RecordedStep recorded = record_step(x, y, inputs);
  compiled_->draws[inputs.key] = recorded.draws;
  return compiled_->cache.insert(
      inputs.key, weft::compile(std::move(recorded.graph),
                                {.name = fmt::format("{}_{}", name_, kind_name(inputs.kind)),
                                 .finite_output = inputs.kind == StepKind::train ? "loss" : ""}));
}

const CompiledStep& Sequential::run_compiled(const Tensor& x, const Tensor& y,
                                             const StepInputs& inputs,
                                             std::vector<Tensor>& outputs) {
  const CompiledStep& step = compiled_step(x, y, inputs);
  step.run(values(inputs.named), outputs);
  default_generator().take(compiled_->draws.at(inputs.key).counters);
  return step;
}

// The samples of a batch are treated apart (no layer mixes them), so the two halves of a batch
// run at once, one per core, each as a compiled step of half the batch: gradients steps whose
// shares of the loss and gradients add up to the whole batch's (then one apply step updates the
// weights), or inference steps. A recurrent step's small products do not split across cores
// well (each would cost a hand-off per time step); whole halves of the recurrence do. The
// halves draw the masks the whole batch would (BatchRows), so the results differ from the
// whole batch's only in the order of float sums. Not for steps too short to pay for the
// hand-off (decided once per `key`, the whole batch's), for stateful layers (whose states a run
// carries on), for a layer that says it mixes the samples of a batch (a user's layer;
// tf.distribute splits a batch across replicas on the same assumption that none does), or for
// masks that do not lead with the batch's rows.
struct Sequential::Halves {
  std::array<StepInputs, 2> inputs;
  std::array<const CompiledStep*, 2> steps;
};

std::optional<Sequential::Halves> Sequential::halves(StepKind kind, const Tensor& x,
                                                     const Tensor& y, const std::string& key,
                                                     BatchRows rows_of) {
  constexpr int64_t min_rows = 16;   // per half: fewer leave the GEMMs' tiles half empty
  constexpr int64_t min_calls = 16;  // a step with a recurrence makes hundreds of calls
  const bool training = kind == StepKind::train;
  const int64_t rows = x.size(0);
  if (default_thread_pool().num_threads() < 2 || rows < 2 * min_rows) return std::nullopt;
  if (const auto known = compiled_->in_halves.find(key);
      known != compiled_->in_halves.end() && !known->second)
    return std::nullopt;
  for (const auto& layer : layers_)
    if (layer->mixes_samples(training) || !layer->states(rows).empty()) return std::nullopt;
  const StepKind part_kind = training ? StepKind::gradients : StepKind::infer;
  const int64_t half = (rows + 1) / 2;
  const std::array<int64_t, 3> bounds = {0, half, rows};
  std::array<Tensor, 2> xs, ys;
  Halves halves;
  for (size_t i = 0; i < 2; ++i) {
    xs[i] = slice(x, 0, bounds[i], bounds[i + 1]);
    if (training) ys[i] = slice(y, 0, bounds[i], bounds[i + 1]);
    halves.inputs[i] = step_inputs(part_kind, xs[i], ys[i],
                                   BatchRows{.first = rows_of.first + bounds[i],
                                             .rows = bounds[i + 1] - bounds[i],
                                             .whole_rows = rows_of.whole_rows});
    compiled_step(xs[i], ys[i], halves.inputs[i]);
  }
  // Found again once both are compiled: storing the second may have evicted the first.
  for (size_t i = 0; i < 2; ++i) {
    const std::string& half_key = halves.inputs[i].key;
    halves.steps[i] = compiled_->cache.find(half_key);
    if (halves.steps[i] == nullptr) return std::nullopt;
    if (!compiled_->draws.at(half_key).by_row ||
        halves.steps[i]->stats().kernel_calls < min_calls) {
      compiled_->in_halves[key] = false;
      return std::nullopt;
    }
  }
  compiled_->in_halves[key] = true;
  return halves;
}

std::optional<std::array<NamedTensors, 2>> Sequential::run_in_halves(StepKind kind, const Tensor& x,
                                                                     const Tensor& y,
                                                                     const std::string& key,
                                                                     BatchRows rows_of) {
  const std::optional<Halves> found = halves(kind, x, y, key, rows_of);
  if (!found) return std::nullopt;
  const auto& [inputs, steps] = *found;
  std::array<std::vector<Tensor>, 2>& outputs = compiled_->half_outputs[key];
  default_thread_pool().parallel_for(0, 2, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) steps[i]->run(values(inputs[i].named), outputs[i]);
  });
  // Both halves draw from the whole batch's counters.
  default_generator().take(compiled_->draws.at(inputs[0].key).counters);
  return std::array{named_outputs(*steps[0], outputs[0]), named_outputs(*steps[1], outputs[1])};
}

std::vector<Tensor> Sequential::apply_gradients(const Tensor& loss, const Tensor& y_pred,
                                                const std::vector<NamedTensors>& part_gradients,
                                                const std::function<void(double)>& check_loss) {
  const double value = loss.item();
  if (check_loss) check_loss(value);
  // A non-finite loss leaves the weights as they were, as the train step's finite_output does.
  if (!std::isfinite(value)) return {loss, y_pred};
  if (jit_compile) {
    const StepInputs inputs = apply_inputs(part_gradients);
    compiled_step({}, {}, inputs).run(values(inputs.named));
  } else {
    tape_apply(part_gradients);
  }
  return {loss, y_pred};
}

namespace {

// A gradients step's outputs after its share of the loss and its predictions.
NamedTensors gradients_of(const NamedTensors& outputs) {
  return {outputs.begin() + 2, outputs.end()};
}

}  // namespace

std::vector<Tensor> Sequential::run_step(StepKind kind, const Tensor& x, const Tensor& y,
                                         const std::function<void(double)>& check_loss) {
  WEFT_CHECK(kind == StepKind::train || kind == StepKind::infer,
             "run_step runs train and infer steps, not {}", kind_name(kind));
  if (!jit_compile) {
    std::vector<Tensor> outputs = values(tape_step(kind, x, y));
    if (kind == StepKind::train) train_update(outputs[0], check_loss);
    return outputs;
  }
  if (compiled_ == nullptr) compiled_ = std::make_shared<CompiledSteps>();
  prepare_step(kind, x);
  if (kind == StepKind::infer)
    if (auto outputs = run_bound_inference(x)) return std::move(*outputs);
  const StepInputs inputs = step_inputs(kind, x, y);
  if (auto halves = run_in_halves(kind, x, y, inputs.key, {0, x.size(0), x.size(0)})) {
    const auto& [first, second] = *halves;
    if (kind == StepKind::infer) return {concat({first[0].second, second[0].second}, 0)};
    // Each half's outputs: its share of the loss, its predictions, then its gradients.
    return apply_gradients(first[0].second + second[0].second,
                           concat({first[1].second, second[1].second}, 0),
                           {gradients_of(first), gradients_of(second)}, check_loss);
  }
  // A non-finite loss leaves the weights as they were (CompileOptions::finite_output).
  std::vector<Tensor> outputs;
  run_compiled(x, y, inputs, outputs);
  if (kind == StepKind::train && check_loss) check_loss(outputs[0].item());
  return outputs;
}

std::optional<std::vector<Tensor>> Sequential::run_bound_inference(const Tensor& x) {
  std::unique_ptr<Predictor::Bound>& bound = compiled_->inference;
  if (bound == nullptr || x.dtype() != bound->x_dtype || x.shape() != bound->x_shape ||
      !still_bound(*bound))
    bound = bind_inference(x);
  if (!bound->binding) return std::nullopt;
  std::vector<Tensor> outputs;
  try {
    outputs = bound->run(x);
  } catch (...) {  // an id out of range, say: the batch is not held either way
    bound->binding->release_input(bound->x_input);
    throw;
  }
  bound->binding->release_input(bound->x_input);
  return outputs;
}

std::vector<Tensor> Sequential::train_share(const Tensor& x, const Tensor& y, BatchRows rows_of,
                                            const Cluster& cluster,
                                            const std::function<void(double)>& check_loss) {
  // This rank's shares of the loss and of the gradients: from the halves' or one gradients step,
  // from the tape, or none for a rank without rows (a last batch of fewer rows than ranks).
  std::vector<NamedTensors> pieces;
  Shape no_rows = output_shape();
  no_rows.insert(no_rows.begin(), 0);
  Tensor y_pred = empty(no_rows, {.dtype = weights().front()->value.dtype()});
  if (compiled_ == nullptr) compiled_ = std::make_shared<CompiledSteps>();
  prepare_step(StepKind::train, x);
  if (x.size(0) > 0 && jit_compile) {
    const StepInputs whole = step_inputs(StepKind::train, x, y);
    if (auto halves = run_in_halves(StepKind::train, x, y, whole.key, rows_of)) {
      pieces.assign(halves->begin(), halves->end());
      y_pred = concat({pieces[0][1].second, pieces[1][1].second}, 0);
    } else {
      std::vector<Tensor> outputs;
      const CompiledStep& step =
          run_compiled(x, y, step_inputs(StepKind::gradients, x, y, rows_of), outputs);
      pieces.push_back(named_outputs(step, outputs));
      y_pred = pieces[0][1].second;
    }
  } else if (x.size(0) > 0) {
    Generator& generator = default_generator();
    Tensor state = random_state(generator);
    state.data<int64_t>()[2] = rows_of.first;
    RandomStateScope random(generator, state, rows_of);
    pieces.push_back(tape_gradients(x, y, rows_of));
    y_pred = pieces[0][1].second;
    generator.take(random.taken());
  }
  // One buffer for every gradient and the loss, summed across the ranks at once (tensor fusion):
  // a weight no piece gave a gradient gets zeros, so that every rank's buffer has one layout.
  const DType dtype = weights().front()->value.dtype();
  std::vector<std::pair<std::string, Shape>> layout;
  int64_t size = 1;  // the loss, last
  for_each_trainable([&](const std::string& name, const Weight& weight) {
    WEFT_CHECK(weight.value.dtype() == dtype,
               "fit across ranks: weight \"{}\" is {}, the model's first weight {}; give every "
               "layer one dtype",
               name, dtype_name(weight.value.dtype()), dtype_name(dtype));
    layout.emplace_back(name, weight.value.shape());
    size += weight.value.numel();
  });
  const Tensor fused = zeros({size}, {.dtype = dtype});
  // The sum of the pieces' values named `name` into `target`, a view of `fused`.
  const auto add_pieces = [&](const std::string& name, const Tensor& target) {
    Tensor sum;
    for (const NamedTensors& piece : pieces)
      for (const auto& [piece_name, value] : piece)
        if (piece_name == name) sum = sum.defined() ? sum + value : value;
    if (sum.defined()) target.assign_(sum);
  };
  NamedTensors gradients;
  int64_t offset = 0;
  for (const auto& [name, shape] : layout) {
    gradients.emplace_back(name,
                           slice(fused, 0, offset, offset + shape_numel(shape)).reshape(shape));
    add_pieces(name, gradients.back().second);
    offset += shape_numel(shape);
  }
  const Tensor loss = slice(fused, 0, size - 1, size).reshape({});
  add_pieces("loss", loss);
  if (dtype == DType::f32)
    cluster.sum(std::span(fused.data<float>(), static_cast<size_t>(size)));
  else
    cluster.sum(std::span(fused.data<double>(), static_cast<size_t>(size)));
  return apply_gradients(loss.copy(), y_pred, {gradients}, check_loss);
}

Graph Sequential::capture_step(StepKind kind, const Tensor& x, const Tensor& y) {
  prepare_step(kind, x);
  if (kind == StepKind::apply) {
    NamedTensors gradients;
    for_each_trainable([&](const std::string& gradient, const Weight& weight) {
      gradients.emplace_back(gradient, zeros_like(weight.value));
    });
    return record_step(x, y, apply_inputs({gradients})).graph;
  }
  std::optional<BatchRows> part;
  if (kind == StepKind::gradients) part = BatchRows{0, x.size(0), x.size(0)};
  return record_step(x, y, step_inputs(kind, x, y, part)).graph;
}

// ---- Predictor -------------------------------------------------------------------------------

Predictor::Predictor(Sequential& model, Shape input_shape, DType dtype)
    : model_(&model), input_shape_(std::move(input_shape)), dtype_(dtype) {}
Predictor::Predictor(Predictor&&) noexcept = default;
Predictor& Predictor::operator=(Predictor&&) noexcept = default;
Predictor::~Predictor() = default;

Tensor Predictor::operator()(const Tensor& x) {
  WEFT_CHECK(
      x.defined() && x.dtype() == dtype_ && x.shape() == input_shape_,
      "predictor of model \"{}\": x is {}, the predictor takes {} {}", model_->name(),
      x.defined() ? fmt::format("{} {}", dtype_name(x.dtype()), shape_str(x.shape())) : "undefined",
      dtype_name(dtype_), shape_str(input_shape_));
  if (!model_->jit_compile) return model_->predict_on_batch(x);
  if (bound_ == nullptr || !model_->still_bound(*bound_)) bound_ = model_->bind_inference(x);
  if (!bound_->binding) return model_->predict_on_batch(x);
  return bound_->run(x).front();
}

Predictor Sequential::predictor(const Shape& batch_input_shape, DType dtype) {
  WEFT_CHECK(!batch_input_shape.empty() && batch_input_shape[0] > 0,
             "model \"{}\": a predictor's input shape leads with a batch size of at least 1; got "
             "{}",
             name_, shape_str(batch_input_shape));
  build_for_batches(batch_input_shape);
  Predictor predictor(*this, batch_input_shape, dtype);
  // Only its shape is read.
  if (jit_compile) predictor.bound_ = bind_inference(empty(batch_input_shape, {.dtype = dtype}));
  return predictor;
}

std::unique_ptr<Predictor::Bound> Sequential::bind_inference(const Tensor& x) {
  prepare_step(StepKind::infer, x);
  if (compiled_ == nullptr) compiled_ = std::make_shared<CompiledSteps>();
  const StepInputs inputs = step_inputs(StepKind::infer, x, {});
  auto bound = std::make_unique<Predictor::Bound>();
  bound->steps = compiled_;
  bound->x_shape = x.shape();
  bound->x_dtype = x.dtype();
  if (halves(StepKind::infer, x, {}, inputs.key, {0, x.size(0), x.size(0)})) return bound;
  compiled_step(x, {}, inputs);
  bound->counters = compiled_->draws.at(inputs.key).counters;
  const auto input_of = [&](const Tensor& tensor) {
    const auto found = std::ranges::find(inputs.named, tensor.impl(),
                                         [](const auto& named) { return named.second.impl(); });
    WEFT_CHECK(found != inputs.named.end(), "model \"{}\": a tensor of {} is not a step input",
               name_, shape_str(tensor.shape()));
    return static_cast<size_t>(found - inputs.named.begin());
  };
  bound->x_input = input_of(x);
  bound->random_input = input_of(inputs.random);
  size_t state_count = 0;
  for (const auto& layer : layers_) {
    for (const Weight* weight : layer->weights())
      bound->weight_inputs.emplace_back(weight, input_of(weight->value));
    const std::vector<Tensor>& states = layer->states(x.size(0));
    if (states.empty()) continue;
    const size_t first = input_of(states.front());
    for (size_t i = 1; i < states.size(); ++i)
      WEFT_CHECK(input_of(states[i]) == first + i,
                 "model \"{}\": layer \"{}\"'s states are not consecutive step inputs", name_,
                 layer->name());
    bound->state_inputs.emplace_back(layer.get(), first);
    state_count += states.size();
  }
  // A call checks only x, random, the weights and the states: an input of another kind would go
  // unchecked.
  WEFT_CHECK(2 + bound->weight_inputs.size() + state_count == inputs.named.size(),
             "model \"{}\": its inference step has inputs other than x, random, weights and "
             "states",
             name_);
  bound->binding.emplace(compiled_->cache.find_shared(inputs.key), values(inputs.named));
  return bound;
}

bool Sequential::still_bound(const Predictor::Bound& bound) {
  if (compiled_.owner_before(bound.steps) || bound.steps.owner_before(compiled_)) return false;
  if (!bound.binding) return true;
  const StepBinding& binding = *bound.binding;
  const std::vector<Tensor>& inputs = binding.inputs();
  // A tensor's storage and offset never change, so the same tensor reads the same data.
  const auto is_input = [&](const Tensor& tensor, size_t index) {
    return tensor.impl() == inputs[index].impl();
  };
  for (const auto& [weight, index] : bound.weight_inputs)
    if (!is_input(weight->value, index)) return false;
  const int64_t batch = bound.x_shape[0];
  for (const auto& [layer, first] : bound.state_inputs) {
    const std::vector<Tensor>& states = layer->states(batch);
    for (size_t i = 0; i < states.size(); ++i)
      if (first + i >= inputs.size() || !is_input(states[i], first + i)) return false;
  }
  return true;
}

const StepCache& Sequential::compiled_steps() const {
  static const StepCache empty;
  return compiled_ != nullptr ? compiled_->cache : empty;
}

}  // namespace weft
