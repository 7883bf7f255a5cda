// fit()'s side of the callbacks in callbacks.h: each option struct made into the object that
// acts on it, called at the points of training Keras calls it. Used by models/fit.cpp only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "weft/models/callbacks.h"
#include "weft/models/training.h"
#include "weft/runtime/random.h"

namespace weft {

class OptimizerState;
class Sequential;

// Where fit() is, kept up to date by fit() and saved and put back by BackupAndRestore.
struct TrainingProgress {
  int epoch = 0;        // the epoch running (from 0), or the next one between epochs
  int64_t batch = 0;    // the batches of `epoch` done
  int64_t steps = 0;    // batches per epoch
  int64_t samples = 0;  // training samples per epoch
  Generator epoch_start = Generator();  // the default generator as `epoch` began (its shuffle)
  History& history;
};

// What a callback may read and change.
struct TrainingContext {
  Sequential& model;
  OptimizerState& optimizer;        // its learning rate; all of it for BackupAndRestore
  std::vector<std::string> logged;  // the keys fit() logs each epoch, in order
  bool validating;                  // whether val_ keys are among them
  TrainingProgress& progress;
  int64_t batch_size;  // fit()'s, across every rank
  bool writes_files;   // false on the ranks after the first: they neither print nor write files
};

// Named tensors: a callback's state (numbers as float64 scalars).
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class CallbackList {
 public:
  // One runner per callback, in order; a BackupAndRestore acts after all of them, so that its
  // checkpoints hold what they did. Checks every option before training starts (a monitor that
  // is not logged, an unwritable CSV file, a bad filepath template, a backup_dir that cannot be
  // written) and throws weft::Error naming the callback.
  CallbackList(const std::vector<Callback>& callbacks, const TrainingContext& context);
  ~CallbackList();
  CallbackList(const CallbackList&) = delete;
  CallbackList& operator=(const CallbackList&) = delete;

  // Whether a nan loss ends training (TerminateOnNaN) rather than throwing.
  bool terminates_on_nan() const { return terminates_on_nan_; }
  // Before the first epoch. A BackupAndRestore that finds a checkpoint puts back the weights,
  // the optimizer's state, the default generator, the context's progress (History included), the
  // model's stop_training and the callbacks' state.
  void on_train_begin();
  void on_epoch_begin(int epoch);
  // `logs` hold the epoch's running values so far; `batch` counts from 0 within the epoch (the
  // context's progress counts it done).
  void on_train_batch_end(int64_t batch, const Logs& logs);
  // Callbacks may add to `logs` (the learning rate).
  void on_epoch_end(int epoch, Logs& logs);
  // Once the epoch's logs are in the History and the progress points at the next epoch.
  void on_epoch_recorded();
  void on_train_end();

  class Runner;
  class Backup;

 private:
  std::vector<std::unique_ptr<Runner>> runners_;
  // Each runner's name in a checkpoint: its position and kind, "2:EarlyStopping".
  std::vector<std::string> names_;
  std::unique_ptr<Backup> backup_;
  bool terminates_on_nan_ = false;
};

// A callback as fit() runs it (models/callbacks.cpp).
class CallbackList::Runner {
 public:
  virtual ~Runner() = default;
  virtual void on_epoch_begin(int /*epoch*/) {}
  virtual void on_train_batch_end(int64_t /*batch*/, const Logs& /*logs*/) {}
  virtual void on_epoch_end(int /*epoch*/, Logs& /*logs*/) {}
  virtual void on_train_end() {}
  // What the callback carries from one epoch to the next (best values, counters, weights), for
  // BackupAndRestore to save; set_state puts back what state() gave, and throws weft::Error
  // naming a value that `saved` lacks.
  virtual NamedTensors state() const { return {}; }
  virtual void set_state(const NamedTensors& /*saved*/) {}
};

// BackupAndRestore's checkpoints (models/backup.cpp).
class CallbackList::Backup {
 public:
  // Checks the options, and that backup_dir is a folder that can be written (making it if
  // missing); throws weft::Error naming the option or the folder.
  Backup(const BackupAndRestore& options, const TrainingContext& context, const CallbackList& list);
  // Puts back the checkpoint in backup_dir, if there is one, after checking that it is whole
  // and was written by this model, optimizer and data; else throws weft::Error naming the file
  // and what differs.
  void restore();
  // Write a checkpoint when one is due (the context's progress says where fit() is).
  void after_batch();
  void after_epoch();
  void on_train_end();

 private:
  void save() const;

  BackupAndRestore options_;
  TrainingContext context_;
  const CallbackList& list_;
  std::filesystem::path file_;  // backup_dir/latest.weights
};

}  // namespace weft
