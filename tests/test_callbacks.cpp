// The callbacks beyond EarlyStopping (tests/test_training.cpp has it): CSVLogger's file,
// ReduceLROnPlateau's and LearningRateScheduler's rates (which compiled steps must see without
// recompiling), ModelCheckpoint's files and messages, TerminateOnNaN; the validation_data tuple
// and the time per epoch; and the errors for bad options, each before any training.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.h"
#include "training_data.h"
#include "weft/models/core_layers.h"
#include "weft/models/sequential.h"
#include "weft/ops/ops.h"

namespace weft {
namespace {

namespace fs = std::filesystem;
using testing_support::comparison_data;
using testing_support::Data;
using testing_support::expect_error;
using testing_support::weight_values;
using Values = std::vector<double>;

Sequential classifier() {
  Sequential model{Dense(4).activation("tanh").input_shape({2}), Dense(1).activation("sigmoid")};
  return model;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class Callbacks : public testing_support::TempDirTest, public testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    model_.jit_compile = GetParam();
  }
  // Seeded before the data and the weights are drawn, so that no test depends on the ones
  // before it.
  bool seeded_ = (manual_seed(3), true);
  Data data_ = comparison_data(40, 4);
  Sequential model_ = classifier();
};

// ---- Learning rate --------------------------------------------------------------------------

TEST_P(Callbacks, ReduceLROnPlateauFollowsKerasPatienceCooldownAndFloor) {
  // min_delta 10: only the first epoch counts as an improvement. Patience 2, cooldown 1, floor
  // 0.01: reduced after epochs 3 and 5 (the second time to the floor), then no more.
  model_.compile(SGD{.learning_rate = 0.5}, "binary_crossentropy");
  testing::internal::CaptureStdout();
  const History history = model_.fit(data_.x, data_.y,
                                     {.epochs = 8,
                                      .callbacks = {ReduceLROnPlateau{.monitor = "loss",
                                                                      .factor = 0.1,
                                                                      .patience = 2,
                                                                      .verbose = 1,
                                                                      .min_delta = 10,
                                                                      .cooldown = 1,
                                                                      .min_lr = 0.01}},
                                      .verbose = 0});
  const std::string output = testing::internal::GetCapturedStdout();
  // The rate in force during each epoch, logged as Keras 2 logs it.
  const Values expected{0.5, 0.5, 0.5, 0.05, 0.05, 0.01, 0.01, 0.01};
  ASSERT_EQ(history["lr"].size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(history["lr"][i], expected[i], 1e-15);
  EXPECT_EQ(output,
            "\nEpoch 3: ReduceLROnPlateau reducing learning rate to 0.05.\n"
            "\nEpoch 5: ReduceLROnPlateau reducing learning rate to 0.01.\n")
      << output;
}

TEST_P(Callbacks, LearningRateSchedulerSetsTheRateEachEpoch) {
  model_.compile(SGD{.learning_rate = 0.4}, "binary_crossentropy");
  std::vector<double> seen;
  const History history =
      model_.fit(data_.x, data_.y,
                 {.epochs = 3,
                  .callbacks = {LearningRateScheduler{[&](int epoch, double rate) {
                    seen.push_back(rate);
                    return epoch == 0 ? rate : rate / 2;
                  }}},
                  .verbose = 0});
  EXPECT_EQ(seen, (Values{0.4, 0.4, 0.2}));
  EXPECT_EQ(history["lr"], (Values{0.4, 0.2, 0.1}));
}

TEST_P(Callbacks, AScheduledRateOfZeroFreezesTheWeights) {
  // The rate is an input of the compiled step, not a constant frozen into it.
  model_.compile(SGD{.learning_rate = 0.5}, "binary_crossentropy");
  model_.fit(data_.x, data_.y, {.epochs = 1, .verbose = 0});  // compiles the step at rate 0.5
  const std::vector<Values> before = weight_values(model_);
  model_.fit(data_.x, data_.y,
             {.epochs = 2,
              .callbacks = {LearningRateScheduler{[](int, double) { return 0.0; }}},
              .verbose = 0});
  EXPECT_EQ(weight_values(model_), before);
}

// ---- CSVLogger ------------------------------------------------------------------------------

TEST_P(Callbacks, CsvLoggerWritesKerasColumnsAndAppends) {
  model_.compile("adam", "binary_crossentropy", {"accuracy"});
  const fs::path path = dir_ / "log.csv";
  const History history = model_.fit(data_.x, data_.y,
                                     {.epochs = 2,
                                      .validation_split = 0.25,
                                      .callbacks = {CSVLogger{.filename = path.string()}},
                                      .verbose = 0});
  // The epoch from 0, then the keys sorted, as Keras's CSVLogger; Python's csv line ends.
  const std::string text = read_text(path);
  const std::regex value(R"([-+0-9.e]+)");
  std::string expected_pattern = "epoch,accuracy,loss,val_accuracy,val_loss\r\n";
  for (int epoch = 0; epoch < 2; ++epoch)
    expected_pattern += std::to_string(epoch) + R"((,[-+0-9.e]+){4}\r\n)";
  EXPECT_TRUE(std::regex_match(text, std::regex(expected_pattern))) << text;
  // The values are the History's, written as Python's str() writes a float: they read back
  // exactly, and a whole number has ".0".
  const std::string second_line = text.substr(text.find("\r\n") + 2);
  std::istringstream fields(second_line.substr(0, second_line.find("\r\n")));
  std::string field;
  std::getline(fields, field, ',');
  EXPECT_EQ(field, "0");
  for (const char* key : {"accuracy", "loss", "val_accuracy", "val_loss"}) {
    std::getline(fields, field, ',');
    const double logged = history[key][0];
    EXPECT_EQ(std::stod(field), logged) << key << ": " << field;
    EXPECT_EQ(field, logged == std::floor(logged) ? fmt::format("{}.0", logged)
                                                  : fmt::format("{}", logged))
        << key;
  }

  // append: no second header; another separator.
  model_.fit(data_.x, data_.y,
             {.validation_split = 0.25,
              .callbacks = {CSVLogger{.filename = path.string(), .append = true}},
              .verbose = 0});
  const std::string appended = read_text(path);
  EXPECT_EQ(appended.substr(0, text.size()), text);
  EXPECT_TRUE(appended.substr(text.size()).starts_with("0,"));
  EXPECT_EQ(appended.find("epoch", 1), std::string::npos);

  const fs::path semicolons = dir_ / "semicolons.csv";
  model_.fit(
      data_.x, data_.y,
      {.callbacks = {CSVLogger{.filename = semicolons.string(), .separator = ';'}}, .verbose = 0});
  EXPECT_TRUE(read_text(semicolons).starts_with("epoch;accuracy;loss\r\n0;"));
}

TEST_P(Callbacks, CsvLoggerSeesTheRateOfCallbacksBeforeIt) {
  model_.compile("sgd", "mse");
  const fs::path path = dir_ / "log.csv";
  model_.fit(data_.x, data_.y,
             {.callbacks = {LearningRateScheduler{[](int, double) { return 0.125; }},
                            CSVLogger{.filename = path.string()}},
              .verbose = 0});
  EXPECT_TRUE(
      std::regex_match(read_text(path), std::regex("epoch,loss,lr\r\n0,[-+0-9.e]+,0\\.125\r\n")))
      << read_text(path);
}

// ---- ModelCheckpoint ------------------------------------------------------------------------

TEST_P(Callbacks, ModelCheckpointSavesTheBestWeightsWithKerasMessages) {
  model_.compile(Adam{.learning_rate = 0.05}, "binary_crossentropy");
  const fs::path best = dir_ / "best.weights";
  testing::internal::CaptureStdout();
  const History history = model_.fit(data_.x, data_.y,
                                     {.epochs = 3,
                                      .callbacks = {ModelCheckpoint{.filepath = best.string(),
                                                                    .monitor = "loss",
                                                                    .verbose = 1,
                                                                    .save_best_only = true,
                                                                    .save_weights_only = true}},
                                      .verbose = 0});
  const std::string output = testing::internal::GetCapturedStdout();
  const Values& loss = history["loss"];
  std::string expected = fmt::format(
      "\nEpoch 1: loss improved from inf to {:.5f}, saving model to {}\n", loss[0], best.string());
  double lowest = loss[0];
  for (size_t epoch = 1; epoch < loss.size(); ++epoch) {
    if (loss[epoch] < lowest) {
      expected +=
          fmt::format("\nEpoch {}: loss improved from {:.5f} to {:.5f}, saving model to {}\n",
                      epoch + 1, lowest, loss[epoch], best.string());
      lowest = loss[epoch];
    } else {
      expected += fmt::format("\nEpoch {}: loss did not improve from {:.5f}\n", epoch + 1, lowest);
    }
  }
  EXPECT_EQ(output, expected);
  Sequential restored = classifier();
  restored.load_weights(best.string());
  EXPECT_EQ(restored.count_params(), model_.count_params());
}

TEST_P(Callbacks, ModelCheckpointFormatsTheEpochAndLogsIntoFilepath) {
  model_.compile("adam", "binary_crossentropy");
  const History history = model_.fit(
      data_.x, data_.y,
      {.epochs = 2,
       .callbacks = {ModelCheckpoint{.filepath = (dir_ / "w.{epoch:02d}-{loss:.2f}.bin").string(),
                                     .save_weights_only = true}},
       .verbose = 0});
  for (int epoch = 0; epoch < 2; ++epoch)
    EXPECT_TRUE(fs::exists(dir_ / fmt::format("w.{:02d}-{:.2f}.bin", epoch + 1,
                                              history["loss"][static_cast<size_t>(epoch)])));
  // Without save_weights_only the whole model is saved, as save_model saves it.
  model_.fit(data_.x, data_.y,
             {.callbacks = {ModelCheckpoint{.filepath = (dir_ / "model").string()}}, .verbose = 0});
  EXPECT_TRUE(fs::exists(dir_ / "model" / "model.json"));
}

// ---- TerminateOnNaN -------------------------------------------------------------------------

TEST_P(Callbacks, TerminateOnNanStopsAtTheBatchWithKerasMessage) {
  Tensor x = data_.x.copy();
  x.data<float>()[2 * 9] = NAN;  // sample 9: batch 2 (from 0) with batches of 4
  // No relu: it maps nan to 0.
  Sequential model{Dense(1).activation("sigmoid").input_shape({2})};
  model.jit_compile = GetParam();
  model.compile("adam", "binary_crossentropy");
  testing::internal::CaptureStdout();
  const History history = model.fit(x, data_.y,
                                    {.epochs = 3,
                                     .batch_size = 4,
                                     .shuffle = false,
                                     .callbacks = {TerminateOnNaN{}},
                                     .verbose = 0});
  EXPECT_EQ(testing::internal::GetCapturedStdout(),
            "Batch 2: Invalid loss, terminating training\n");
  EXPECT_EQ(history.epochs_run, 1);
  EXPECT_TRUE(std::isnan(history["loss"][0]));
  // The weights are those of the last finite step.
  for (const Values& values : weight_values(model))
    for (const double value : values) EXPECT_TRUE(std::isfinite(value));
}

INSTANTIATE_TEST_SUITE_P(CompiledAndEager, Callbacks, testing::Bool(), [](const auto& param_info) {
  return param_info.param ? "compiled" : "eager";
});

// ---- validation_data, History -----------------------------------------------------------------

TEST(Fit, ValidationDataIsWrittenAsKerasTupleAndHistoryTimesEpochs) {
  manual_seed(8);
  const Data train = comparison_data(40, 9), held_out = comparison_data(30, 10);
  Sequential model = classifier();
  model.compile("adam", "mse");
  const History history = model.fit(
      train.x, train.y, {.epochs = 2, .validation_data = {held_out.x, held_out.y}, .verbose = 0});
  EXPECT_EQ(history["val_loss"].size(), 2u);
  ASSERT_EQ(history.seconds_per_epoch.size(), 2u);
  for (const double seconds : history.seconds_per_epoch) EXPECT_GT(seconds, 0);
  // The other spellings still compile.
  model.fit(train.x, train.y,
            {.validation_data = std::make_pair(held_out.x, held_out.y), .verbose = 0});
  model.fit(train.x, train.y, {.validation_data = {{held_out.x, held_out.y}}, .verbose = 0});
}

// ---- Bad options ------------------------------------------------------------------------------

TEST(Callbacks, BadOptionsFailBeforeAnyTraining) {
  manual_seed(11);
  const Data data = comparison_data(20, 12);
  Sequential model = classifier();
  model.compile("adam", "binary_crossentropy", {"accuracy"});
  const std::vector<Values> untouched = weight_values(model);
  const auto fit_with = [&](const Callback& callback) {
    model.fit(data.x, data.y, {.epochs = 2, .callbacks = {callback}, .verbose = 0});
  };
  const fs::path missing_folder = fs::temp_directory_path() / "weft_no_such_folder" / "log.csv";
  const std::vector<std::pair<Callback, std::vector<std::string>>> cases{
      {ReduceLROnPlateau{}, {"ReduceLROnPlateau", "\"val_loss\"", "loss, accuracy"}},
      {ReduceLROnPlateau{.monitor = "loss", .factor = 1},
       {"ReduceLROnPlateau", "factor", "[0, 1)"}},
      {ReduceLROnPlateau{.monitor = "loss", .mode = "lowest"},
       {"ReduceLROnPlateau", "\"lowest\"", "\"auto\", \"min\" or \"max\""}},
      {CSVLogger{.filename = missing_folder.string()},
       {"CSVLogger", missing_folder.string(), "No such file or directory"}},
      {CSVLogger{}, {"CSVLogger", "filename"}},
      {LearningRateScheduler{}, {"LearningRateScheduler", "schedule"}},
      {LearningRateScheduler{[](int, double) { return -1.0; }},
       {"LearningRateScheduler", "-1", "epoch 0", ">= 0"}},
      {ModelCheckpoint{.filepath = "w-{val_los:.2f}.bin"},
       {"ModelCheckpoint", "w-{val_los:.2f}.bin", "epoch, loss, accuracy"}},
      {ModelCheckpoint{.filepath = "w.bin", .save_best_only = true},
       {"ModelCheckpoint", "\"val_loss\"", "loss, accuracy", "validation_split"}},
      {ModelCheckpoint{}, {"ModelCheckpoint", "filepath"}},
      {ModelCheckpoint{.filepath = "w.bin", .mode = "best"}, {"ModelCheckpoint", "\"best\""}},
  };
  for (const auto& [callback, fragments] : cases) {
    SCOPED_TRACE(fragments.front());
    expect_error([&] { fit_with(callback); }, fragments);
    EXPECT_EQ(weight_values(model), untouched);
  }
}

}  // namespace
}  // namespace weft
