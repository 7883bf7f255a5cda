// BackupAndRestore: a fit() stopped at an epoch's end or midway, by an exception or by SIGKILL
// (tests/helpers/checkpoint_child.cpp), and run again in a fresh model, ends with the weights
// and the History of a run never stopped, bit for bit, compiled and eager; the checkpoint is a
// weight file load_weights reads, deleted at the end unless asked not to; and the refusals: a
// checkpoint of another model, optimizer or data, a damaged file, a bad backup_dir or save_freq.
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "checkpoint_task.h"
#include "test_support.h"
#include "weft/models/core_layers.h"
#include "weft/models/sequential.h"

extern char** environ;

namespace weft {
namespace {

namespace fs = std::filesystem;
using testing_support::Data;
using testing_support::expect_error;
using testing_support::kTaskSteps;
using testing_support::task_data;
using testing_support::task_model;
using testing_support::task_options;
using testing_support::weight_values;
using Values = std::vector<double>;
using SaveFreq = std::variant<std::string, int64_t>;

// What a run ends with: every weight, and the History's values per epoch.
struct Outcome {
  std::vector<Values> weights;
  std::map<std::string, Values> history;
};

Outcome outcome(const Sequential& model, const History& history) {
  return {weight_values(model), history.history};
}

// Thrown by a callback to stop a fit() as a crash would, without on_train_end.
struct Stop {};

// Stops a fit() at the end of batch `batch` (from 0) of epoch `epoch`, or with batch -1 at the
// end of the epoch: before the checkpoint due there is written.
LambdaCallback stop_at(int epoch, int64_t batch) {
  auto epoch_now = std::make_shared<int>(0);
  return {.on_epoch_end =
              [=](int ended, const Logs&) {
                if (ended == epoch && batch < 0) throw Stop{};
                *epoch_now = ended + 1;
              },
          .on_batch_end =
              [=](int64_t done, const Logs&) {
                if (*epoch_now == epoch && done == batch) throw Stop{};
              }};
}

class Checkpoints : public testing_support::TempDirTest, public testing::WithParamInterface<bool> {
 protected:
  // The run never stopped, once per mode: tests/checkpoint_task.h without BackupAndRestore.
  static const Outcome& uninterrupted(bool jit) {
    static std::map<bool, Outcome> outcomes;
    if (!outcomes.contains(jit)) {
      Sequential model = task_model(jit);
      const Data data = task_data();
      const History history = model.fit(data.x, data.y, task_options({}));
      outcomes[jit] = outcome(model, history);
    }
    return outcomes.at(jit);
  }

  BackupAndRestore backup(SaveFreq save_freq = "epoch") const {
    return {.backup_dir = (dir_ / "backup").string(), .save_freq = save_freq};
  }

  // The program run again: a fresh model, made as before, resumes.
  Outcome resume(SaveFreq save_freq = "epoch") const {
    Sequential model = task_model(GetParam());
    const Data data = task_data();
    const History history = model.fit(data.x, data.y, task_options({backup(save_freq)}));
    return outcome(model, history);
  }

  void expect_uninterrupted(const Outcome& resumed) const {
    const Outcome& expected = uninterrupted(GetParam());
    EXPECT_EQ(resumed.weights, expected.weights);
    // Every epoch's validation values follow from its weights, so they show where a resumed
    // run parts from the uninterrupted one. The training loss of an epoch resumed midway
    // covers only its batches after the resume, as in Keras.
    for (const std::string key : {"val_loss", "val_accuracy", "lr"})
      EXPECT_EQ(resumed.history.at(key), expected.history.at(key)) << key;
    EXPECT_EQ(resumed.history.at("loss").size(), expected.history.at("loss").size());
    // The checkpoint went once the fit ended, and the folder with it.
    EXPECT_FALSE(fs::exists(dir_ / "backup"));
  }
};

TEST_P(Checkpoints, AStoppedFitResumesToTheUninterruptedWeights) {
  struct Case {
    SaveFreq save_freq;
    int epoch;
    int64_t batch;  // -1: the epoch's end
  };
  const std::vector<Case> cases{
      {"epoch", 0, -1},                 // before the first checkpoint: a fresh start
      {"epoch", 2, -1},                 // at an epoch's end, before its checkpoint
      {"epoch", 4, 3},                  // midway: resumed from the end of epoch 3
      {int64_t{3}, 1, 2},               // from the checkpoint after batch 0 of epoch 1 (the 6th)
      {int64_t{kTaskSteps}, 3, 1},      // due at each epoch's last batch: written at its end
      {int64_t{1}, 5, kTaskSteps - 1},  // the last batch of the last epoch
  };
  const Data data = task_data();
  for (const auto& [save_freq, epoch, batch] : cases) {
    SCOPED_TRACE(fmt::format(
        "save_freq {}, stopped at epoch {} batch {}",
        std::visit([](const auto& f) { return fmt::format("{}", f); }, save_freq), epoch, batch));
    Sequential model = task_model(GetParam());
    EXPECT_THROW(
        model.fit(data.x, data.y, task_options({stop_at(epoch, batch), backup(save_freq)})), Stop);
    expect_uninterrupted(resume(save_freq));
  }
}

TEST_P(Checkpoints, AFitKilledWithSigkillResumesToTheUninterruptedWeights) {
  struct Case {
    std::string save_freq;
    int epoch;
    int64_t batch;
  };
  const std::vector<Case> cases{{"epoch", 3, -1}, {"2", 2, 3}};
  for (const auto& [save_freq, epoch, batch] : cases) {
    SCOPED_TRACE(fmt::format("save_freq {}, killed at epoch {} batch {}", save_freq, epoch, batch));
    const std::string backup_dir = (dir_ / "backup").string(), jit = GetParam() ? "1" : "0",
                      epoch_arg = std::to_string(epoch), batch_arg = std::to_string(batch);
    std::vector<char*> argv{const_cast<char*>(WEFT_CHECKPOINT_CHILD),
                            const_cast<char*>(backup_dir.c_str()),
                            const_cast<char*>(jit.c_str()),
                            const_cast<char*>(save_freq.c_str()),
                            const_cast<char*>(epoch_arg.c_str()),
                            const_cast<char*>(batch_arg.c_str()),
                            nullptr};
    pid_t child = 0;
    ASSERT_EQ(posix_spawn(&child, WEFT_CHECKPOINT_CHILD, nullptr, nullptr, argv.data(), environ),
              0);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
    ASSERT_TRUE(fs::exists(dir_ / "backup" / "latest.weights"));
    const SaveFreq freq =
        save_freq == "epoch" ? SaveFreq("epoch") : SaveFreq(std::stoll(save_freq));
    expect_uninterrupted(resume(freq));
  }
}

TEST_P(Checkpoints, AWriteCutShortLeavesTheLastCheckpointWhole) {
  // A kill while a checkpoint is written leaves its temporary file beside the last whole one.
  const Data data = task_data();
  Sequential model = task_model(GetParam());
  EXPECT_THROW(model.fit(data.x, data.y, task_options({stop_at(3, 1), backup()})), Stop);
  const fs::path torn = dir_ / "backup" / "latest.weights.tmp-0badf00d";
  std::ofstream(torn, std::ios::binary) << "WEFTWGT";
  expect_uninterrupted(resume());
}

TEST_P(Checkpoints, TheCheckpointIsAWeightFileKeptOnRequest) {
  const Data data = task_data();
  Sequential model = task_model(GetParam());
  BackupAndRestore kept = backup();
  kept.delete_checkpoint = false;
  fs::create_directories(dir_ / "backup");
  std::ofstream(dir_ / "backup" / "notes.txt") << "the user's";
  const History history = model.fit(data.x, data.y, task_options({kept}));
  // load_weights reads a checkpoint's weights (the last epoch's: EarlyStopping restores the best
  // ones only after the checkpoint).
  Sequential reader = task_model(GetParam());
  reader.load_weights((dir_ / "backup" / "latest.weights").string());
  EXPECT_EQ(reader.count_params(), model.count_params());
  // fit() again finds the finished run: no more epochs, the same History and final weights.
  const std::vector<Values> after = weight_values(model);
  const History again = model.fit(data.x, data.y, task_options({kept}));
  EXPECT_EQ(again.history, history.history);
  EXPECT_EQ(again.epochs_run, history.epochs_run);
  EXPECT_EQ(weight_values(model), after);
  // Deleting the checkpoint leaves a folder that holds the user's files.
  model.fit(data.x, data.y, task_options({backup()}));
  EXPECT_FALSE(fs::exists(dir_ / "backup" / "latest.weights"));
  EXPECT_TRUE(fs::exists(dir_ / "backup" / "notes.txt"));
}

INSTANTIATE_TEST_SUITE_P(CompiledAndEager, Checkpoints, testing::Bool(),
                         [](const auto& param_info) {
                           return param_info.param ? "compiled" : "eager";
                         });

// ---- Refusals ---------------------------------------------------------------------------------

class CheckpointRefusals : public testing_support::TempDirTest {
 protected:
  // A checkpoint of tests/checkpoint_task.h after epoch 1, in dir_/backup.
  void SetUp() override {
    TempDirTest::SetUp();
    Sequential model = task_model(false);
    EXPECT_THROW(
        model.fit(data_.x, data_.y,
                  task_options({stop_at(1, -1), BackupAndRestore{.backup_dir = folder()}})),
        Stop);
  }
  std::string folder() const { return (dir_ / "backup").string(); }
  std::string file() const { return (dir_ / "backup" / "latest.weights").string(); }

  Data data_ = task_data();
};

TEST_F(CheckpointRefusals, ACheckpointOfAnotherModelOptimizerOrDataIsRefused) {
  struct Case {
    std::string what;
    std::function<Sequential()> model;
    int64_t batch_size;
    std::vector<std::string> fragments;
  };
  const auto compiled_with = [](Optimizer optimizer) {
    return [optimizer] {
      Sequential model = task_model(false);
      model.compile(optimizer, "binary_crossentropy", {"accuracy"});
      return model;
    };
  };
  const std::vector<Case> cases{
      {"a wider layer",
       [] {
         Sequential model{Dense(6).activation("tanh").input_shape({2}), Dropout(0.25),
                          Dense(1).activation("sigmoid")};
         model.compile(Adam{}, "binary_crossentropy", {"accuracy"});
         return model;
       },
       8,
       {"BackupAndRestore", "layer \"dense\" weight \"kernel\"", "(2, 8)", "(2, 6)"}},
      {"another layer",
       [] {
         Sequential model{Dense(8).activation("tanh").input_shape({2}),
                          Dense(1).activation("sigmoid").name("out")};
         model.compile(Adam{}, "binary_crossentropy", {"accuracy"});
         return model;
       },
       8,
       {"BackupAndRestore", "layer \"dense_1\"", "lacks"}},
      {"another optimizer",
       compiled_with(SGD{.momentum = 0.9}),
       8,
       {"BackupAndRestore", file(), "Adam(beta_1=0.9, beta_2=0.999, epsilon=1e-07)",
        "SGD(momentum=0.9, nesterov=false)"}},
      {"other Adam hyperparameters",
       compiled_with(Adam{.beta_1 = 0.8}),
       8,
       {"Adam(beta_1=0.9,", "Adam(beta_1=0.8,"}},
      {"another batch size",
       [] { return task_model(false); },
       4,
       {"BackupAndRestore", "40 samples in batches of 8", "40 samples in batches of 4"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Sequential model = c.model();
    const std::vector<Values> untouched = weight_values(model);
    FitOptions options = task_options({BackupAndRestore{.backup_dir = folder()}});
    options.batch_size = c.batch_size;
    expect_error([&] { model.fit(data_.x, data_.y, options); }, c.fragments);
    EXPECT_EQ(weight_values(model), untouched);
  }
}

TEST_F(CheckpointRefusals, ADamagedCheckpointIsRefusedNamingTheFileAndTheFault) {
  std::string whole;
  {
    std::ifstream in(file(), std::ios::binary);
    whole.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::string bad_metadata = whole;
  bad_metadata.back() = 'X';         // the file ends with its JSON metadata
  std::string past_the_end = whole;  // the metadata's length stays the same
  const size_t batch = past_the_end.find("\"batch\":0,");
  ASSERT_NE(batch, std::string::npos);
  past_the_end.replace(batch, 10, "\"batch\":9,");
  Sequential plain = task_model(false);
  const fs::path weights_only = dir_ / "weights_only";
  plain.save_weights(weights_only.string());
  std::string weights_file;
  {
    std::ifstream in(weights_only, std::ios::binary);
    weights_file.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases{
      {whole.substr(0, whole.size() / 2), {"BackupAndRestore", file(), "truncated"}},
      {whole.substr(0, 20), {"BackupAndRestore", file(), "truncated"}},
      {"not a checkpoint at all", {"BackupAndRestore", file(), "not a weft weight file"}},
      {bad_metadata, {"BackupAndRestore", file(), "corrupt", "metadata"}},
      {past_the_end, {"BackupAndRestore", file(), "corrupt", "batch 9 of epoch 1", "5 batches"}},
      {whole + "extra", {"BackupAndRestore", file(), "corrupt", "data follows"}},
      {weights_file, {"BackupAndRestore", file(), "holds weights only"}},
  };
  for (const auto& [contents, fragments] : cases) {
    SCOPED_TRACE(fragments.back());
    std::ofstream(file(), std::ios::binary | std::ios::trunc) << contents;
    Sequential model = task_model(false);
    expect_error(
        [&] {
          model.fit(data_.x, data_.y, task_options({BackupAndRestore{.backup_dir = folder()}}));
        },
        fragments);
  }
}

TEST_F(CheckpointRefusals, BadOptionsAreRefusedBeforeAnyTraining) {
  const fs::path a_file = dir_ / "a_file";
  std::ofstream(a_file) << "x";
  const std::vector<std::pair<std::vector<Callback>, std::vector<std::string>>> cases{
      {{BackupAndRestore{}}, {"BackupAndRestore", "backup_dir"}},
      {{BackupAndRestore{.backup_dir = a_file.string()}}, {"BackupAndRestore", a_file.string()}},
      {{BackupAndRestore{.backup_dir = (a_file / "below").string()}},
       {"BackupAndRestore", "cannot make backup_dir", (a_file / "below").string()}},
      {{BackupAndRestore{.backup_dir = folder(), .save_freq = "batch"}},
       {"BackupAndRestore", "save_freq", "\"batch\""}},
      {{BackupAndRestore{.backup_dir = folder(), .save_freq = int64_t{0}}},
       {"BackupAndRestore", "save_freq", "got 0"}},
      {{BackupAndRestore{.backup_dir = folder()}, BackupAndRestore{.backup_dir = folder()}},
       {"BackupAndRestore", "takes one"}},
  };
  for (const auto& [callbacks, fragments] : cases) {
    SCOPED_TRACE(fragments.back());
    Sequential model = task_model(false);
    const std::vector<Values> untouched = weight_values(model);
    FitOptions options = task_options({});
    options.callbacks = callbacks;
    expect_error([&] { model.fit(data_.x, data_.y, options); }, fragments);
    EXPECT_EQ(weight_values(model), untouched);
  }
}

}  // namespace
}  // namespace weft
