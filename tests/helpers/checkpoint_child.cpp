// A fit() of tests/checkpoint_task.h with BackupAndRestore that kills its own process with
// SIGKILL at a given point, for the kill -9 test of tests/test_checkpoints.cpp.
//   weft_checkpoint_child BACKUP_DIR JIT(0|1) SAVE_FREQ(epoch|N) EPOCH BATCH
// dies at the end of batch BATCH (from 0) of epoch EPOCH (from 0), before that batch's
// checkpoint, or, with BATCH -1, at the end of epoch EPOCH, before its checkpoint.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "checkpoint_task.h"

int main(int argc, char** argv) {
  using namespace weft;
  using namespace weft::testing_support;
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s BACKUP_DIR JIT SAVE_FREQ EPOCH BATCH\n", argv[0]);
    return 2;
  }
  const std::string save_freq = argv[3];
  const int kill_epoch = std::atoi(argv[4]);
  const int64_t kill_batch = std::atoll(argv[5]);
  int epoch_now = 0;
  const LambdaCallback killer{.on_epoch_end =
                                  [&](int epoch, const Logs&) {
                                    if (epoch == kill_epoch && kill_batch < 0) std::raise(SIGKILL);
                                    epoch_now = epoch + 1;
                                  },
                              .on_batch_end =
                                  [&](int64_t batch, const Logs&) {
                                    if (epoch_now == kill_epoch && batch == kill_batch)
                                      std::raise(SIGKILL);
                                  }};
  const BackupAndRestore backup{
      .backup_dir = argv[1],
      .save_freq = save_freq == "epoch"
                       ? BackupAndRestore{}.save_freq
                       : std::variant<std::string, int64_t>(std::stoll(save_freq))};
  Sequential model = task_model(std::string(argv[2]) == "1");
  const Data data = task_data();
  model.fit(data.x, data.y, task_options({killer, backup}));
  std::fprintf(stderr, "weft_checkpoint_child: fit() ended without being killed\n");
  return 1;
}
