// The steps fit(), evaluate() and predict() run: captured (without computing anything) on the
// first batch of each shape, compiled, and served from a cache (Sequential::jit_compile).
#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <string_view>

#include "weft/compiler/compile.h"
#include "weft/models/training_state.h"
#include "weft/ops/ops.h"
#include "weft/runtime/op.h"

namespace weft {

struct Sequential::CompiledSteps {
  StepCache cache;
  // How many random counters each compiled step takes (its dropout masks), by cache key.
  std::map<std::string, uint64_t> random_draws;
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
  const CompiledStep* step = compiled_->cache.find(inputs.key);
  if (step == nullptr) {
    // The first batch of this shape: captured without computing anything, compiled, then run
    // like every later batch.
    RecordedStep recorded = record_step(kind, x, y, inputs);
    compiled_->random_draws[inputs.key] = recorded.random_draws;
    step = &compiled_->cache.insert(
        inputs.key, weft::compile(std::move(recorded.graph),
                                  {.name = fmt::format("{}_{}", name_, kind_name(kind)),
                                   .finite_output = kind == StepKind::train ? "loss" : ""}));
  }
  // A non-finite loss leaves the weights as they were (CompileOptions::finite_output).
  std::vector<Tensor> outputs = step->run(values(inputs.named));
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
