// The training that tests/test_checkpoints.cpp stops and resumes, and that
// tests/helpers/checkpoint_child.cpp runs in a process killed with SIGKILL partway: a small
// classifier with Dropout, shuffled every epoch, whose ReduceLROnPlateau (patience 2, so its
// wait counter matters) and EarlyStopping (restore_best_weights) carry state across epochs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "training_data.h"
#include "weft/models/core_layers.h"
#include "weft/models/sequential.h"

namespace weft::testing_support {

constexpr int kTaskEpochs = 6;
// 40 samples to train on, in 5 batches of 8, and 8 to validate on: one batch shape, so a compiled
// run compiles two steps.
constexpr int64_t kTaskBatchSize = 8;
constexpr int64_t kTaskSteps = 5;

inline Data task_data() { return comparison_data(40, 21); }

// The model as a fresh process makes it: seeded, built, compiled.
inline Sequential task_model(bool jit_compile) {
  manual_seed(5);
  Sequential model{Dense(8).activation("tanh").input_shape({2}), Dropout(0.25),
                   Dense(1).activation("sigmoid")};
  model.jit_compile = jit_compile;
  model.compile(Adam{.learning_rate = 0.05}, "binary_crossentropy", {"accuracy"});
  return model;
}

// The callbacks, then `extra` (a BackupAndRestore, a LambdaCallback that stops the run).
inline FitOptions task_options(const std::vector<Callback>& extra) {
  std::vector<Callback> callbacks{
      ReduceLROnPlateau{.monitor = "val_loss", .factor = 0.5, .patience = 2, .min_delta = 10},
      EarlyStopping{.monitor = "val_loss", .patience = 100, .restore_best_weights = true}};
  callbacks.insert(callbacks.end(), extra.begin(), extra.end());
  const Data validation = comparison_data(8, 22);
  return {.epochs = kTaskEpochs,
          .batch_size = kTaskBatchSize,
          .validation_data = {validation.x, validation.y},
          .callbacks = callbacks,
          .verbose = 0};
}

}  // namespace weft::testing_support
