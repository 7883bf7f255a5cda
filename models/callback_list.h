// fit()'s side of the callbacks in callbacks.h: each option struct made into the object that
// acts on it, called at the points of training Keras calls it. Used by models/fit.cpp only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "weft/models/callbacks.h"

namespace weft {

class Logs;
class OptimizerState;
class Sequential;

// What a callback may read and change.
struct TrainingContext {
  Sequential& model;
  OptimizerState& optimizer;        // its learning rate
  std::vector<std::string> logged;  // the keys fit() logs each epoch, in order
  bool validating;                  // whether val_ keys are among them
};

class CallbackList {
 public:
  // One runner per callback, in order. Checks every option before training starts (a monitor
  // that is not logged, an unwritable CSV file, a bad filepath template) and throws weft::Error
  // naming the callback.
  CallbackList(const std::vector<Callback>& callbacks, const TrainingContext& context);
  ~CallbackList();
  CallbackList(const CallbackList&) = delete;
  CallbackList& operator=(const CallbackList&) = delete;

  // Whether a nan loss ends training (TerminateOnNaN) rather than throwing.
  bool terminates_on_nan() const { return terminates_on_nan_; }
  void on_epoch_begin(int epoch);
  // `logs` hold the epoch's running values so far; `batch` counts from 0 within the epoch.
  void on_train_batch_end(int64_t batch, const Logs& logs);
  // Callbacks may add to `logs` (the learning rate).
  void on_epoch_end(int epoch, Logs& logs);
  void on_train_end();

  class Runner;

 private:
  std::vector<std::unique_ptr<Runner>> runners_;
  bool terminates_on_nan_ = false;
};

}  // namespace weft
