// Sequential: a stack of layers with Keras's build, summary, compile, fit, evaluate, predict
// and weight files.
#pragma once

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

namespace weft {

class CompiledStep;
class StepCache;

// False when the environment sets WEFT_JIT_COMPILE=0: every model then runs eagerly.
bool jit_compile_default();

// The two steps a model compiles: a training step (forward, loss, backward, optimizer update)
// and an inference step (forward, including one streaming step of stateful layers).
enum class StepKind { train, infer };

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
  // Set by callbacks to end fit() after the current epoch (EarlyStopping) or batch
  // (TerminateOnNaN).
  bool stop_training = false;
  // As Keras's jit_compile: fit, evaluate and predict run each step as native code compiled for
  // its batch shape (captured without computing anything, and compiled, when the first batch of
  // a shape arrives; that batch then runs compiled too), or, when false, on the eager tape.
  // Its default is true unless the environment sets WEFT_JIT_COMPILE=0.
  bool jit_compile = jit_compile_default();

  // The step that fit() (train) or predict() (infer) compiles, recorded for a batch like x (and
  // y, for train). Recording computes nothing (CaptureMode::meta): the weights, the optimizer and
  // the default generator stay as they were. Builds the model (and the optimizer's slots) first.
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
  Shape input_shape_for_build() const;
  struct StepInputs;
  StepInputs step_inputs(StepKind kind, const Tensor& x, const Tensor& y);
  // The step's forward pass (and loss, for train) as ordinary code on the tape: run eagerly, or
  // recorded by a capture.
  std::vector<std::pair<std::string, Tensor>> tape_step(StepKind kind, const Tensor& x,
                                                        const Tensor& y);
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
  RecordedStep record_step(StepKind kind, const Tensor& x, const Tensor& y,
                           const StepInputs& inputs);
  // The compiled step for `inputs`: from the cache, or captured and compiled now.
  const CompiledStep& compiled_step(StepKind kind, const Tensor& x, const Tensor& y,
                                    const StepInputs& inputs);
  // A compiled inference step run on the two halves of the batch at once, where that pays;
  // none where it does not. `key` is the whole batch's step key.
  std::optional<Tensor> infer_in_halves(const Tensor& x, const std::string& key);
  std::string name_;
  std::vector<std::unique_ptr<Layer>> layers_;
  // Shared only so that TrainingState can stay incomplete here; a model is never copied.
  std::shared_ptr<TrainingState> training_;
  struct CompiledSteps;
  std::shared_ptr<CompiledSteps> compiled_;
};

}  // namespace weft
