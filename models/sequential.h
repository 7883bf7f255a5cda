// Sequential: a stack of layers with Keras's build, summary, compile, fit, evaluate, predict
// and weight files.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "weft/models/layer.h"
#include "weft/models/training.h"

namespace weft {

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
  void compile(Optimizer optimizer, const std::string& loss,
               const std::vector<std::string>& metrics = {});
  void compile(const std::string& optimizer, const std::string& loss,
               const std::vector<std::string>& metrics = {});
  History fit(const Tensor& x, const Tensor& y, const FitOptions& options = {});
  Logs evaluate(const Tensor& x, const Tensor& y, const EvaluateOptions& options = {});
  Tensor predict(const Tensor& x, int64_t batch_size = 32);
  // Set by callbacks (EarlyStopping) to end fit() after the current epoch.
  bool stop_training = false;

  // Weight files (models/weights_file.cpp): written to a temporary file and renamed, so a
  // crash never leaves a half-written file; loading checks every layer's names and shapes.
  void save_weights(const std::string& path) const;
  void load_weights(const std::string& path);

  struct TrainingState;  // the compiled optimizer, loss and metrics (models/fit.cpp)

 private:
  Shape input_shape_for_build() const;
  std::string name_;
  std::vector<std::unique_ptr<Layer>> layers_;
  // Shared only so that TrainingState can stay incomplete here; a model is never copied.
  std::shared_ptr<TrainingState> training_;
};

}  // namespace weft
