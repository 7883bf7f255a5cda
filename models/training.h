// What compile() and fit() take and give: optimizers, losses, metrics, callbacks, History.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

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
  std::map<std::string, std::vector<double>> history;  // "loss", "val_accuracy", ... per epoch
  int epochs_run = 0;
  // Throws weft::Error naming the missing key and the ones there are.
  const std::vector<double>& operator[](const std::string& name) const;
};

// Stops when `monitor` has not improved by more than min_delta for `patience` epochs; with
// restore_best_weights the best epoch's weights are put back when training ends, whether it
// stopped early or not. At verbose 1 it prints Keras's "Epoch 5: early stopping" and
// "Restoring model weights from the end of the best epoch: 3.".
struct EarlyStopping {
  std::string monitor = "val_loss";
  double min_delta = 0;
  int patience = 0;
  std::string mode = "auto";  // "min", "max", or "auto" (max for accuracy, min otherwise)
  bool restore_best_weights = false;
  int verbose = 0;
};

// EarlyStopping's decisions, epoch by epoch, as Keras makes them; fit() drives it.
class EarlyStoppingMonitor {
 public:
  enum class Verdict { improved, waiting, stop };
  // Throws weft::Error for an unknown mode or a negative patience.
  explicit EarlyStoppingMonitor(const EarlyStopping& options);
  // Takes the logs of `epoch` (from 0); throws weft::Error when they lack the monitored value.
  // An improvement is a value beyond the best so far by more than min_delta; training stops
  // once `patience` epochs in a row bring none (never after the first epoch).
  Verdict update(int epoch, const Logs& logs);
  int best_epoch() const { return best_epoch_; }
  double best() const { return best_; }

 private:
  EarlyStopping options_;
  bool maximize_;
  double best_;
  int best_epoch_ = 0;
  int wait_ = 0;
};

// Calls a function at the end of every epoch (epoch numbered from 0).
struct LambdaCallback {
  std::function<void(int epoch, const Logs& logs)> on_epoch_end = {};
};
using Callback = std::variant<EarlyStopping, LambdaCallback>;

struct FitOptions {
  int epochs = 1;
  // Samples per step; the last batch of an epoch takes what is left. Validation uses it too.
  int64_t batch_size = 32;
  double validation_split = 0;  // the LAST fraction of the samples, taken before shuffling
  // (x, y) to validate on; overrides validation_split.
  std::optional<std::pair<Tensor, Tensor>> validation_data = {};
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
