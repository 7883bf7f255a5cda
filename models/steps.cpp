// The steps fit(), evaluate() and predict() run: captured (without computing anything) on the
// first batch of each shape, compiled, and served from a cache (Sequential::jit_compile).
#include <fmt/format.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "weft/compiler/compile.h"
#include "weft/models/training_state.h"
#include "weft/ops/ops.h"
#include "weft/runtime/op.h"
#include "weft/runtime/thread_pool.h"

namespace weft {

struct Sequential::CompiledSteps {
  StepCache cache;
  // How many random counters each compiled step takes (its dropout masks), by cache key.
  std::map<std::string, uint64_t> random_draws;
  // Whether an inference step runs as two halves of its batch (infer_in_halves), by the whole
  // batch's cache key: decided once, so that a step that does not pays for the question once.
  std::map<std::string, bool> in_halves;
};

// The named tensors a step reads and may write: the batch, the random state, the weights, the
// optimizer's variables (train) and the states of stateful layers.
struct Sequential::StepInputs {
  std::vector<std::pair<std::string, Tensor>> named;
  Tensor random;    // the generator's state, among `named`
  std::string key;  // the kind and every input's name, dtype and shape
};

// A step captured without values, and how many random counters (dropout masks) a run of it takes.
struct Sequential::RecordedStep {
  Graph graph;
  uint64_t random_draws = 0;
};

bool jit_compile_default() {
  const char* value = std::getenv("WEFT_JIT_COMPILE");
  return value == nullptr || std::string_view(value) != "0";
}

namespace {

constexpr const char* kind_name(StepKind kind) {
  return kind == StepKind::train ? "train" : "infer";
}

std::vector<Tensor> values(const std::vector<std::pair<std::string, Tensor>>& named) {
  std::vector<Tensor> tensors;
  for (const auto& [name, tensor] : named) tensors.push_back(tensor);
  return tensors;
}

}  // namespace

Sequential::StepInputs Sequential::step_inputs(StepKind kind, const Tensor& x, const Tensor& y) {
  StepInputs inputs;
  inputs.named.emplace_back("x", x);
  if (kind == StepKind::train) inputs.named.emplace_back("y", y);
  inputs.random = random_state(default_generator());
  inputs.named.emplace_back("random", inputs.random);
  std::vector<std::string> trainable;
  for (const auto& layer : layers_) {
    for (Weight* weight : layer->weights()) {
      const std::string name = layer->name() + "/" + weight->name;
      inputs.named.emplace_back(name, weight->value);
      if (weight->trainable) trainable.push_back(name);
    }
    const std::vector<Tensor> states = layer->states(x.size(0));
    for (size_t i = 0; i < states.size(); ++i)
      inputs.named.emplace_back(fmt::format("{}/state{}", layer->name(), i), states[i]);
  }
  if (kind == StepKind::train)
    for (const auto& [name, variable] : training_->state->variables(trainable))
      inputs.named.emplace_back("optimizer/" + name, variable);
  // In bytes, not formatted: a cache hit builds the key on every batch.
  inputs.key = kind_name(kind);
  for (const auto& [name, tensor] : inputs.named) {
    const Shape& shape = tensor.shape();
    inputs.key += name;  // then bytes no name holds
    inputs.key += static_cast<char>(tensor.dtype());
    inputs.key += static_cast<char>(shape.size());
    inputs.key.append(reinterpret_cast<const char*>(shape.data()), shape.size() * sizeof(int64_t));
  }
  return inputs;
}

std::vector<std::pair<std::string, Tensor>> Sequential::tape_step(StepKind kind, const Tensor& x,
                                                                  const Tensor& y) {
  if (kind == StepKind::infer) {
    NoGrad no_grad;
    return {{"y_pred", call(x, false)}};
  }
  const Tensor y_pred = call(x, true);
  const Tensor loss = training_->loss->compute(y, y_pred);
  return {{"loss", loss}, {"y_pred", y_pred.detach()}};
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
  if (kind == StepKind::train && !training_->state)
    training_->state.emplace(training_->optimizer, weights());
}

Sequential::RecordedStep Sequential::record_step(StepKind kind, const Tensor& x, const Tensor& y,
                                                 const StepInputs& inputs) {
  Generator& generator = default_generator();
  const Generator before = generator;
  RecordedStep recorded;
  recorded.graph = capture(
      inputs.named,
      [&] {
        RandomStateScope random(generator, inputs.random);
        std::vector<std::pair<std::string, Tensor>> named = tape_step(kind, x, y);
        if (kind == StepKind::train) train_update(named[0].second, {});
        return named;
      },
      CaptureMode::meta);
  // The masks' counters are counted and given back: a run of the step takes them.
  recorded.random_draws = generator.offset() - before.offset();
  generator = before;
  return recorded;
}

const CompiledStep& Sequential::compiled_step(StepKind kind, const Tensor& x, const Tensor& y,
                                              const StepInputs& inputs) {
  if (const CompiledStep* step = compiled_->cache.find(inputs.key)) return *step;
  // The first batch of this shape: captured without computing anything, compiled, then run
  // like every later batch.
  RecordedStep recorded = record_step(kind, x, y, inputs);
  compiled_->random_draws[inputs.key] = recorded.random_draws;
  return compiled_->cache.insert(
      inputs.key, weft::compile(std::move(recorded.graph),
                                {.name = fmt::format("{}_{}", name_, kind_name(kind)),
                                 .finite_output = kind == StepKind::train ? "loss" : ""}));
}

// Inference treats the samples of a batch apart (no layer mixes them outside training), so the
// two halves of a batch run at once, one per core, each as a compiled step of half the batch. A
// recurrent step's small products do not split across cores well (each would cost a hand-off
// per time step); whole halves of the recurrence do. Not for steps too short to pay for the
// hand-off or that draw random numbers (decided once per `key`, the whole batch's), for stateful
// layers (whose states a run carries on), or for a layer that says it mixes the samples of a
// batch (a user's layer; tf.distribute splits a batch across replicas on the same assumption
// that none does).
std::optional<Tensor> Sequential::infer_in_halves(const Tensor& x, const std::string& key) {
  constexpr int64_t min_rows = 16;   // per half: fewer leave the GEMMs' tiles half empty
  constexpr int64_t min_calls = 16;  // a step with a recurrence makes hundreds of calls
  const int64_t rows = x.size(0);
  if (default_thread_pool().num_threads() < 2 || rows < 2 * min_rows) return std::nullopt;
  if (const auto known = compiled_->in_halves.find(key);
      known != compiled_->in_halves.end() && !known->second)
    return std::nullopt;
  for (const auto& layer : layers_)
    if (layer->mixes_samples_at_inference() || !layer->states(rows).empty()) return std::nullopt;
  const int64_t half = (rows + 1) / 2;
  const std::array<Tensor, 2> parts = {slice(x, 0, 0, half), slice(x, 0, half, rows)};
  std::array<StepInputs, 2> inputs;
  for (size_t i = 0; i < parts.size(); ++i) {
    inputs[i] = step_inputs(StepKind::infer, parts[i], {});
    compiled_step(StepKind::infer, parts[i], {}, inputs[i]);
  }
  // Found again once both are compiled: storing the second may have evicted the first.
  std::array<const CompiledStep*, 2> steps{};
  for (size_t i = 0; i < parts.size(); ++i) {
    steps[i] = compiled_->cache.find(inputs[i].key);
    if (steps[i] == nullptr) return std::nullopt;
    if (compiled_->random_draws.at(inputs[i].key) != 0 ||
        steps[i]->stats().kernel_calls < min_calls) {
      compiled_->in_halves[key] = false;
      return std::nullopt;
    }
  }
  compiled_->in_halves[key] = true;
  std::array<Tensor, 2> outputs;
  default_thread_pool().parallel_for(0, 2, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) outputs[i] = steps[i]->run(values(inputs[i].named))[0];
  });
  return concat({outputs[0], outputs[1]}, 0);
}

std::vector<Tensor> Sequential::run_step(StepKind kind, const Tensor& x, const Tensor& y,
                                         const std::function<void(double)>& check_loss) {
  if (!jit_compile) {
    std::vector<Tensor> outputs = values(tape_step(kind, x, y));
    if (kind == StepKind::train) train_update(outputs[0], check_loss);
    return outputs;
  }
  if (compiled_ == nullptr) compiled_ = std::make_shared<CompiledSteps>();
  prepare_step(kind, x);
  const StepInputs inputs = step_inputs(kind, x, y);
  if (kind == StepKind::infer)
    if (std::optional<Tensor> y_pred = infer_in_halves(x, inputs.key)) return {*y_pred};
  const CompiledStep& step = compiled_step(kind, x, y, inputs);
  // A non-finite loss leaves the weights as they were (CompileOptions::finite_output).
  std::vector<Tensor> outputs = step.run(values(inputs.named));
  default_generator().take(compiled_->random_draws.at(inputs.key));
  if (kind == StepKind::train && check_loss) check_loss(outputs[0].item());
  return outputs;
}

Graph Sequential::capture_step(StepKind kind, const Tensor& x, const Tensor& y) {
  prepare_step(kind, x);
  return record_step(kind, x, y, step_inputs(kind, x, y)).graph;
}

const StepCache& Sequential::compiled_steps() const {
  static const StepCache empty;
  return compiled_ != nullptr ? compiled_->cache : empty;
}

}  // namespace weft
