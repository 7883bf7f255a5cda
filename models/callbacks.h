// The callbacks fit() takes, as Keras's keras.callbacks with their options and defaults:
//   .callbacks = {EarlyStopping{.patience = 2}, CSVLogger{.filename = "log.csv"}}
// They run in the order listed, after the epoch's progress line, on one set of logs: a callback
// that adds the learning rate ("lr", as Keras 2 names it) shows it to those after it and to the
// History.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <variant>

namespace weft {

class Logs;

// The best value of a monitored log so far, and whether a new value beats it. Mode "auto"
// maximises a monitor whose name ends in acc, accuracy, auc, precision or recall, and minimises
// any other.
class BestValue {
 public:
  // Throws weft::Error naming `callback` for a mode other than "auto", "min" or "max".
  BestValue(const std::string& callback, const std::string& monitor, const std::string& mode);
  // Beyond the best so far by more than min_delta (>= 0).
  bool improves(double current, double min_delta = 0) const;
  void set(double best) { best_ = best; }
  double best() const { return best_; }

 private:
  bool maximize_;
  double best_;
};

// Stops when `monitor` has not improved by more than min_delta for `patience` epochs; with
// restore_best_weights the best epoch's weights are put back when training ends, whether it
// stopped early or not. At verbose 1 it prints Keras's "Epoch 5: early stopping" and
// "Restoring model weights from the end of the best epoch: 3.".
struct EarlyStopping {
  std::string monitor = "val_loss";
  double min_delta = 0;
  int patience = 0;
  std::string mode = "auto";  // "min", "max", or "auto" (BestValue)
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
  double best() const { return best_.best(); }
  int wait() const { return wait_; }
  // Puts back where a stopped fit() was (BackupAndRestore).
  void restore(double best, int best_epoch, int wait);

 private:
  EarlyStopping options_;
  BestValue best_;
  int best_epoch_ = 0;
  int wait_ = 0;
};

// keras.callbacks.ReduceLROnPlateau: once `monitor` has not improved by more than min_delta for
// `patience` epochs, the learning rate is multiplied by `factor` (never below min_lr), then
// `cooldown` epochs pass before waiting starts again. Puts the rate in the logs as "lr" (before
// any reduction that epoch). At verbose 1 it prints Keras's
// "Epoch 5: ReduceLROnPlateau reducing learning rate to 0.0001.".
struct ReduceLROnPlateau {
  std::string monitor = "val_loss";
  double factor = 0.1;  // in [0, 1)
  int patience = 10;
  int verbose = 0;
  std::string mode = "auto";
  double min_delta = 1e-4;
  int cooldown = 0;
  double min_lr = 0;
};

// keras.callbacks.LearningRateScheduler: before each epoch (from 0) the learning rate becomes
// schedule(epoch, current rate). Puts the rate in the logs as "lr". At verbose 1 it prints
// "Epoch 1: LearningRateScheduler setting learning rate to 0.01.".
struct LearningRateScheduler {
  std::function<double(int epoch, double learning_rate)> schedule = {};
  int verbose = 0;
};

// keras.callbacks.CSVLogger: one line per epoch in `filename`: the epoch (from 0), then the logs
// in sorted key order, with a header line first; lines end in "\r\n" as Python's csv module
// writes them. append keeps what the file holds (and writes no header if it holds any). The file
// is opened when fit() starts, so an unwritable path fails before any training.
struct CSVLogger {
  std::string filename;
  char separator = ',';
  bool append = false;
};

// keras.callbacks.ModelCheckpoint: saves the model after every epoch, or, with save_best_only,
// after each epoch that improves `monitor` (mode as EarlyStopping's). filepath may name logs and
// the epoch (from 1) as Python's str.format does: "weights.{epoch:02d}-{val_loss:.2f}.bin".
// Saves with save_model, or with save_weights when save_weights_only; both write the new file
// whole before replacing the old. At verbose 1 it prints Keras's messages ("Epoch 3: val_loss
// improved from 0.41234 to 0.39876, saving model to best.bin", "... did not improve from ...").
struct ModelCheckpoint {
  std::string filepath;
  std::string monitor = "val_loss";
  int verbose = 0;
  bool save_best_only = false;
  bool save_weights_only = false;
  std::string mode = "auto";
};

// keras.callbacks.TerminateOnNaN: a nan or infinite loss ends training after that batch, with
// Keras's "Batch 3: Invalid loss, terminating training" (batch from 0 within the epoch); the
// epoch's logs then hold the nan. The weights stay those of the last finite step. Without it fit()
// throws weft::Error at the first such batch.
struct TerminateOnNaN {};

// keras.callbacks.BackupAndRestore: keeps a checkpoint of the training in `backup_dir` (made if
// missing) so that a fit() that dies, even by kill -9, is resumed by the same fit() call run
// again: it finds the checkpoint, puts everything back and goes on from where it was, ending
// with the weights an uninterrupted run ends with, bit for bit. save_freq is "epoch" (after every
// epoch) or a number of batches, counted across epochs (a checkpoint due at an epoch's last batch
// is written once the epoch has ended). The checkpoint, backup_dir/latest.weights, is a weight
// file (load_weights reads it) that also holds the optimizer's state, the epoch and batch reached,
// the default generator's seed and offset, the History so far and the other callbacks' state;
// it is written whole to a temporary file and renamed, so it is the previous checkpoint or the
// new one, never part of one. With delete_checkpoint it is removed when fit() ends (an
// exception or a kill keeps it), and backup_dir with it if nothing else is there.
struct BackupAndRestore {
  std::string backup_dir;
  std::variant<std::string, int64_t> save_freq = "epoch";
  bool delete_checkpoint = true;
};

// keras.callbacks.LambdaCallback: calls a function at the end of every epoch (from 0), and of
// every training batch (from 0 within its epoch).
struct LambdaCallback {
  std::function<void(int epoch, const Logs& logs)> on_epoch_end = {};
  std::function<void(int64_t batch, const Logs& logs)> on_batch_end = {};
};

using Callback = std::variant<EarlyStopping, ReduceLROnPlateau, LearningRateScheduler, CSVLogger,
                              ModelCheckpoint, TerminateOnNaN, LambdaCallback, BackupAndRestore>;

}  // namespace weft
