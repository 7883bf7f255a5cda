// What compile() and fit() take and give: optimizers, losses, metrics, callbacks, History.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "weft/models/callbacks.h"
#include "weft/runtime/tensor.h"

namespace weft {

// Optimizers, with Keras's defaults.
struct Adam {
  double learning_rate = 0.001;
  double beta_1 = 0.9;
  double beta_2 = 0.999;
  double epsilon = 1e-7;
};
struct SGD {
  double learning_rate = 0.01;
  double momentum = 0.0;
  bool nesterov = false;
};
struct RMSprop {
  double learning_rate = 0.001;
  double rho = 0.9;
  double momentum = 0.0;
  double epsilon = 1e-7;
};
using Optimizer = std::variant<Adam, SGD, RMSprop>;
// "adam", "sgd", "rmsprop" with their defaults.
Optimizer optimizer_by_name(const std::string& name);

// Epoch logs in Keras's order: loss, metrics, then val_loss and val_ metrics.
class Logs {
 public:
  void set(const std::string& name, double value);
  // Throws weft::Error naming the missing key and the ones there are.
  double at(const std::string& name) const;
  bool contains(const std::string& name) const;
  const std::vector<std::pair<std::string, double>>& items() const { return items_; }

 private:
  std::vector<std::pair<std::string, double>> items_;
};

struct History {
  // "loss", "val_accuracy", ... per epoch; "lr" too when a callback logs the learning rate.
  std::map<std::string, std::vector<double>> history;
  int epochs_run = 0;
  // Wall-clock seconds of each epoch, training and validation included (the time Keras's
  // progress line shows); not a log key, so callbacks and monitors never see it.
  std::vector<double> seconds_per_epoch;
  // Throws weft::Error naming the missing key and the ones there are.
  const std::vector<double>& operator[](const std::string& name) const;
};

// fit()'s validation_data, written as Keras's tuple is:
//   .validation_data = {x_val, y_val}
// (a std::pair converts too). Undefined tensors (the default) mean none.
struct ValidationData {
  Tensor x;
  Tensor y;
  ValidationData() = default;
  ValidationData(Tensor x_val, Tensor y_val) : x(std::move(x_val)), y(std::move(y_val)) {}
  ValidationData(std::pair<Tensor, Tensor> data)  // NOLINT: implicit by design
      : x(std::move(data.first)), y(std::move(data.second)) {}
  bool given() const { return x.defined() || y.defined(); }
};

struct FitOptions {
  int epochs = 1;
  // Samples per step; the last batch of an epoch takes what is left. Validation uses it too.
  int64_t batch_size = 32;
  double validation_split = 0;  // the LAST fraction of the samples, taken before shuffling
  // (x, y) to validate on; overrides validation_split.
  ValidationData validation_data = {};
  bool shuffle = true;  // reshuffled every epoch
  std::vector<Callback> callbacks = {};
  // 0: silent; 1: Keras's progress line, redrawn in place while the epoch runs when stdout is
  // a terminal, else printed once at the end of each epoch.
  int verbose = 1;
};

struct EvaluateOptions {
  int64_t batch_size = 32;
  int verbose = 0;  // 1: Keras's progress line
};

}  // namespace weft
