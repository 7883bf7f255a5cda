// What compile() and fit() take and give: optimizers, losses, metrics, callbacks, History.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "weft/autodiff/tensor.h"

namespace weft {

class Sequential;

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
  double at(const std::string& name) const;  // throws weft::Error naming the missing key
  bool contains(const std::string& name) const;
  const std::vector<std::pair<std::string, double>>& items() const { return items_; }

 private:
  std::vector<std::pair<std::string, double>> items_;
};

struct History {
  std::map<std::string, std::vector<double>> history;  // "loss", "val_accuracy", ... per epoch
  int epochs_run = 0;
  const std::vector<double>& operator[](const std::string& name) const;
};

// Stops when `monitor` has not improved by more than min_delta for `patience` epochs; with
// restore_best_weights the best epoch's weights are put back when training ends.
struct EarlyStopping {
  std::string monitor = "val_loss";
  double min_delta = 0;
  int patience = 0;
  std::string mode = "auto";  // "min", "max", or "auto" (max for accuracy, min otherwise)
  bool restore_best_weights = false;
};
// Calls a function at the end of every epoch (epoch numbered from 0).
struct LambdaCallback {
  std::function<void(int epoch, const Logs& logs)> on_epoch_end = {};
};
using Callback = std::variant<EarlyStopping, LambdaCallback>;

struct FitOptions {
  int epochs = 1;
  int64_t batch_size = 32;
  double validation_split = 0;  // the LAST fraction of the samples, taken before shuffling
  std::optional<std::pair<Tensor, Tensor>> validation_data = {};
  bool shuffle = true;  // reshuffled every epoch
  std::vector<Callback> callbacks = {};
  int verbose = 1;  // 0: silent, 1: a progress line per epoch
};

struct EvaluateOptions {
  int64_t batch_size = 32;
  int verbose = 0;
};

}  // namespace weft
