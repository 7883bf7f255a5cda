// compile, fit, evaluate, predict and weight files on small Dense models: learning a rule,
// repeatable seeded runs, validation splits, EarlyStopping, nan detection, progress output,
// and the errors for bad arguments.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "test_support.h"
#include "training_data.h"
#include "weft/models/core_layers.h"
#include "weft/models/recurrent.h"
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

Sequential classifier(double dropout = 0) {
  Sequential model{Dense(8).activation("relu").input_shape({2}), Dropout(dropout),
                   Dense(1).activation("sigmoid")};
  return model;
}

// ---- Learning ------------------------------------------------------------------------------

TEST(Fit, LearnsWhichCoordinateIsLarger) {
  manual_seed(1);
  const Data train = comparison_data(256, 2), test = comparison_data(128, 3);
  Sequential model = classifier();
  model.compile(Adam{.learning_rate = 0.05}, "binary_crossentropy", {"accuracy"});
  const History history = model.fit(train.x, train.y, {.epochs = 12, .verbose = 0});
  EXPECT_EQ(history.epochs_run, 12);
  EXPECT_EQ(history["loss"].size(), 12u);
  EXPECT_LT(history["loss"].back(), history["loss"].front());
  const Logs logs = model.evaluate(test.x, test.y);
  EXPECT_GT(logs.at("accuracy"), 0.9);
  EXPECT_LT(logs.at("loss"), 0.2);
}

TEST(Fit, SeededRunsRepeatExactly) {
  const Data data = comparison_data(100, 4);
  auto train = [&] {
    manual_seed(42);
    Sequential model = classifier(0.3);  // dropout masks come from the same generator
    model.compile("adam", "binary_crossentropy");
    model.fit(data.x, data.y,
              {.epochs = 3, .batch_size = 16, .validation_split = 0.2, .verbose = 0});
    return weight_values(model);
  };
  const std::vector<Values> first = train(), second = train();
  EXPECT_EQ(first, second);
  manual_seed(43);
  Sequential other = classifier(0.3);
  other.compile("adam", "binary_crossentropy");
  other.fit(data.x, data.y, {.epochs = 3, .batch_size = 16, .verbose = 0});
  EXPECT_NE(weight_values(other), first);
}

TEST(Fit, IntegerInputsAndSparseLabels) {
  // Embedding lookups: token 0..4, the class is the token's parity.
  manual_seed(5);
  std::vector<int64_t> tokens, classes;
  for (int64_t i = 0; i < 60; ++i) {
    tokens.push_back(i % 5);
    classes.push_back(i % 5 % 2);
  }
  const Tensor x = from_vector(tokens, {60, 1});
  const Tensor y = from_vector(classes, {60, 1});
  Sequential model{Embedding(5, 4), Dense(2).activation("softmax")};
  model.compile(Adam{.learning_rate = 0.1}, "sparse_categorical_crossentropy", {"accuracy"});
  const History history = model.fit(x, y, {.epochs = 8, .batch_size = 20, .verbose = 0});
  EXPECT_EQ(history["accuracy"].back(), 1.0);
  EXPECT_EQ(model.predict(x).shape(), (Shape{60, 1, 2}));
}

// ---- Validation ------------------------------------------------------------------------------

TEST(Fit, ValidationSplitTakesTheLastSamples) {
  // With a learning rate of 0 the model never changes, so the logged losses must equal those
  // of evaluate() on the first 75 and the last 25 samples. The labels of the two parts differ.
  manual_seed(6);
  const Data data = comparison_data(100, 7);
  const Tensor y = concat({zeros({75}), ones({25})}, 0);
  Sequential model = classifier();
  model.compile(SGD{.learning_rate = 0}, "binary_crossentropy", {"accuracy"});
  const History history =
      model.fit(data.x, y, {.epochs = 2, .batch_size = 8, .validation_split = 0.25, .verbose = 0});
  const Logs train = model.evaluate(slice(data.x, 0, 0, 75), slice(y, 0, 0, 75));
  const Logs validation = model.evaluate(slice(data.x, 0, 75, 100), slice(y, 0, 75, 100));
  EXPECT_NEAR(history["loss"][1], train.at("loss"), 1e-5);
  EXPECT_NEAR(history["accuracy"][1], train.at("accuracy"), 1e-6);
  EXPECT_NEAR(history["val_loss"][0], validation.at("loss"), 1e-5);
  EXPECT_NEAR(history["val_accuracy"][0], validation.at("accuracy"), 1e-6);
  EXPECT_NE(history["val_loss"][0], history["loss"][0]);
}

TEST(Fit, ValidationDataOverridesTheSplit) {
  manual_seed(8);
  const Data train = comparison_data(40, 9), held_out = comparison_data(30, 10);
  Sequential model = classifier();
  model.compile(SGD{.learning_rate = 0}, "mse", {"mae"});
  const History history = model.fit(train.x, train.y,
                                    {.epochs = 1,
                                     .validation_split = 0.5,
                                     .validation_data = std::pair{held_out.x, held_out.y},
                                     .verbose = 0});
  const Logs expected = model.evaluate(held_out.x, held_out.y);
  EXPECT_NEAR(history["val_loss"][0], expected.at("loss"), 1e-6);
  EXPECT_NEAR(history["val_mae"][0], expected.at("mae"), 1e-6);
  // All 40 samples trained: the training loss is over all of them.
  EXPECT_NEAR(history["loss"][0], model.evaluate(train.x, train.y).at("loss"), 1e-5);
}

TEST(Evaluate, AveragesOverSamplesNotBatches) {
  // Batches of 3 over 10 samples: the last batch holds one sample and weighs a tenth.
  manual_seed(11);
  const Data data = comparison_data(10, 12);
  Sequential model = classifier();
  model.compile("adam", "binary_crossentropy", {"accuracy", "mse"});
  const Logs batched = model.evaluate(data.x, data.y, {.batch_size = 3});
  const Logs whole = model.evaluate(data.x, data.y, {.batch_size = 10});
  for (const std::string key : {"loss", "accuracy", "mse"})
    EXPECT_NEAR(batched.at(key), whole.at(key), 1e-6) << key;
  EXPECT_EQ(batched.items().size(), 3u);
  EXPECT_EQ(batched.items()[0].first, "loss");
}

TEST(Predict, ConcatenatesBatchesInInferenceMode) {
  manual_seed(13);
  const Data data = comparison_data(10, 14);
  Sequential model = classifier(0.5);
  const Tensor expected = model.call(data.x, false);
  const Tensor predicted = model.predict(data.x, 3);
  EXPECT_EQ(predicted.shape(), (Shape{10, 1}));
  EXPECT_TRUE(allclose(predicted, expected));
  EXPECT_FALSE(predicted.requires_grad());
}

// ---- EarlyStopping -------------------------------------------------------------------------

Logs logs_with(const std::string& key, double value) {
  Logs logs;
  logs.set("loss", 1.0);
  logs.set(key, value);
  return logs;
}

std::vector<EarlyStoppingMonitor::Verdict> verdicts(const EarlyStopping& options,
                                                    const Values& values) {
  EarlyStoppingMonitor monitor(options);
  std::vector<EarlyStoppingMonitor::Verdict> out;
  for (size_t epoch = 0; epoch < values.size(); ++epoch)
    out.push_back(
        monitor.update(static_cast<int>(epoch), logs_with(options.monitor, values[epoch])));
  return out;
}

TEST(EarlyStopping, StopsAfterPatienceEpochsWithoutImprovement) {
  using V = EarlyStoppingMonitor::Verdict;
  EXPECT_EQ(verdicts({.patience = 2}, {1.0, 0.8, 0.85, 0.9, 0.7}),
            (std::vector<V>{V::improved, V::improved, V::waiting, V::stop, V::improved}));
  // patience 0 stops at the first epoch without improvement.
  EXPECT_EQ(verdicts({}, {1.0, 0.9, 0.9}), (std::vector<V>{V::improved, V::improved, V::stop}));
  // min_delta: 0.95 and 0.92 are not better than 1.0 by more than 0.1.
  EXPECT_EQ(verdicts({.min_delta = 0.1, .patience = 2}, {1.0, 0.95, 0.92, 0.85}),
            (std::vector<V>{V::improved, V::waiting, V::stop, V::improved}));
  // Accuracy is maximised in auto mode; mode "min" turns that around.
  EXPECT_EQ(verdicts({.monitor = "val_accuracy", .patience = 1}, {0.5, 0.6, 0.55}),
            (std::vector<V>{V::improved, V::improved, V::stop}));
  EXPECT_EQ(verdicts({.monitor = "val_accuracy", .patience = 1, .mode = "min"}, {0.5, 0.6}),
            (std::vector<V>{V::improved, V::stop}));
  // Never after the first epoch, even when it brings no improvement (nan).
  EXPECT_EQ(verdicts({}, {NAN, NAN}), (std::vector<V>{V::waiting, V::stop}));
}

TEST(EarlyStopping, TracksTheBestEpoch) {
  EarlyStoppingMonitor monitor({.patience = 5});
  for (const double value : {3.0, 1.0, 2.0, 1.5}) monitor.update(0, logs_with("val_loss", value));
  EXPECT_EQ(monitor.best(), 1.0);
}

TEST(EarlyStopping, RejectsBadOptions) {
  expect_error([] { EarlyStoppingMonitor({.mode = "lowest"}); }, {"mode", "\"lowest\""});
  expect_error([] { EarlyStoppingMonitor({.patience = -1}); }, {"patience", "-1"});
  EarlyStoppingMonitor monitor({.monitor = "val_auc"});
  expect_error([&] { monitor.update(0, logs_with("val_loss", 1)); },
               {"\"val_auc\"", "loss, val_loss"});
}

TEST(EarlyStopping, StopsFitAtTheRightEpoch) {
  // A learning rate of 0 keeps val_loss constant: epoch 1 is the best, epochs 2 and 3 bring no
  // improvement, so patience 2 stops after epoch 3.
  manual_seed(15);
  const Data data = comparison_data(40, 16);
  Sequential model = classifier();
  model.compile(SGD{.learning_rate = 0}, "binary_crossentropy");
  testing::internal::CaptureStdout();
  const History history = model.fit(data.x, data.y,
                                    {.epochs = 10,
                                     .validation_split = 0.25,
                                     .callbacks = {EarlyStopping{.patience = 2, .verbose = 1}},
                                     .verbose = 0});
  const std::string output = testing::internal::GetCapturedStdout();
  EXPECT_EQ(history.epochs_run, 3);
  EXPECT_EQ(history["val_loss"].size(), 3u);
  EXPECT_EQ(output, "Epoch 3: early stopping\n");
}

TEST(EarlyStopping, RestoresTheBestWeightsWhetherItStoppedOrNot) {
  // Validation labels are the opposite of the training rule, so val_loss rises as the model
  // learns and an early epoch is the best.
  const Data train = comparison_data(64, 17), held_out = comparison_data(32, 18);
  const Tensor flipped = 1.0 - held_out.y;
  for (const int patience : {1, 100}) {
    SCOPED_TRACE(patience);
    manual_seed(19);
    Sequential model = classifier();
    model.compile(Adam{.learning_rate = 0.05}, "binary_crossentropy");
    std::vector<std::vector<Values>> after_epoch;
    const History history = model.fit(train.x, train.y,
                                      {.epochs = 6,
                                       .validation_data = std::pair{held_out.x, flipped},
                                       .callbacks = {LambdaCallback{[&](int, const Logs&) {
                                                       after_epoch.push_back(weight_values(model));
                                                     }},
                                                     EarlyStopping{.monitor = "val_loss",
                                                                   .patience = patience,
                                                                   .restore_best_weights = true}},
                                       .verbose = 0});
    const Values& val_loss = history["val_loss"];
    const auto best = std::min_element(val_loss.begin(), val_loss.end()) - val_loss.begin();
    ASSERT_LT(best, history.epochs_run - 1) << "the last epoch must not be the best";
    EXPECT_EQ(history.epochs_run, patience == 1 ? best + 2 : 6);
    EXPECT_EQ(weight_values(model), after_epoch[best]);
    EXPECT_NE(weight_values(model), after_epoch.back());
  }
}

TEST(EarlyStopping, AMonitorFitDoesNotLogIsAnError) {
  const Data data = comparison_data(20, 20);
  Sequential model = classifier();
  model.compile("adam", "binary_crossentropy", {"accuracy"});
  expect_error([&] { model.fit(data.x, data.y, {.callbacks = {EarlyStopping{}}, .verbose = 0}); },
               {"EarlyStopping", "\"val_loss\"", "loss, accuracy", "validation_split"});
}

TEST(Fit, ALambdaCallbackCanStopTraining) {
  const Data data = comparison_data(20, 21);
  Sequential model = classifier();
  model.compile("sgd", "binary_crossentropy");
  std::vector<int> epochs;
  const History history = model.fit(data.x, data.y,
                                    {.epochs = 5,
                                     .callbacks = {LambdaCallback{[&](int epoch, const Logs& logs) {
                                       epochs.push_back(epoch);
                                       EXPECT_TRUE(logs.contains("loss"));
                                       model.stop_training = epoch == 1;
                                     }}},
                                     .verbose = 0});
  EXPECT_EQ(epochs, (std::vector<int>{0, 1}));
  EXPECT_EQ(history.epochs_run, 2);
}

// ---- nan -------------------------------------------------------------------------------------

TEST(Fit, ANanLossNamesTheEpochAndBatch) {
  Data data = comparison_data(12, 22);
  Tensor x = data.x.copy();
  x.data<float>()[2 * 5] = NAN;  // sample 5: batch 2 of 3 with batches of 4
  // No relu: it maps nan to 0.
  Sequential model{Dense(1).activation("sigmoid").input_shape({2})};
  model.compile("adam", "binary_crossentropy");
  expect_error([&] { model.fit(x, data.y, {.batch_size = 4, .shuffle = false, .verbose = 0}); },
               {"fit: the loss became nan at epoch 1, batch 2 of 3"});
}

TEST(Fit, ADivergingModelIsStopped) {
  manual_seed(23);
  const Data data = comparison_data(32, 24);
  Sequential model{Dense(1).input_shape({2})};
  model.compile(SGD{.learning_rate = 1e30}, "mse");
  try {
    model.fit(data.x, data.y, {.epochs = 50, .batch_size = 8, .verbose = 0});
    ADD_FAILURE() << "no error";
  } catch (const Error& error) {
    EXPECT_TRUE(std::regex_search(error.what(),
                                  std::regex("the loss became (nan|inf) at epoch \\d+, batch \\d")))
        << error.what();
  }
}

// ---- Progress output -------------------------------------------------------------------------

TEST(Fit, ProgressLinesFollowKerasFormat) {
  manual_seed(25);
  const Data data = comparison_data(100, 26);
  Sequential model = classifier();
  model.compile("adam", "binary_crossentropy", {"accuracy"});
  testing::internal::CaptureStdout();
  model.fit(data.x, data.y, {.epochs = 2, .batch_size = 32, .validation_split = 0.2});
  const std::string output = testing::internal::GetCapturedStdout();
  // 80 training samples in batches of 32: 3 steps. stdout is not a terminal here, so each
  // epoch prints its finished line once.
  const std::string value = R"((\d\.\d{4}|\d\.\d{4}e[-+]\d\d))";
  const std::string line = R"(3/3 \[==============================\] - \d+s \d+(s|ms|us)/step)"
                           " - loss: " +
                           value + " - accuracy: " + value + " - val_loss: " + value +
                           " - val_accuracy: " + value + "\n";
  EXPECT_TRUE(std::regex_match(output, std::regex("Epoch 1/2\n" + line + "Epoch 2/2\n" + line)))
      << output;
}

TEST(Fit, OneEpochPrintsNoEpochHeaderAndEvaluatePrintsItsLine) {
  manual_seed(27);
  const Data data = comparison_data(10, 28);
  Sequential model = classifier();
  model.compile("adam", "mse");
  testing::internal::CaptureStdout();
  model.fit(data.x, data.y, {.batch_size = 4});
  model.evaluate(data.x, data.y, {.batch_size = 100, .verbose = 1});
  const std::string output = testing::internal::GetCapturedStdout();
  EXPECT_TRUE(
      std::regex_match(output, std::regex(R"(3/3 \[=+\] - \d+s \d+(s|ms|us)/step - loss: \S+\n)"
                                          R"(1/1 \[=+\] - \d+s \d+(s|ms|us)/step - loss: \S+\n)")))
      << output;
}

// ---- Errors ----------------------------------------------------------------------------------

TEST(Fit, BadArgumentsAreRejected) {
  const Data data = comparison_data(10, 29);
  Sequential model = classifier();
  expect_error([&] { model.fit(data.x, data.y); }, {"compile"});
  expect_error([&] { model.compile("adamw", "mse"); }, {"adamw", "adam, sgd, rmsprop"});
  expect_error([&] { model.compile("adam", "hinge"); }, {"hinge", "binary_crossentropy"});
  expect_error([&] { model.compile("adam", "mse", {"precision"}); }, {"precision", "accuracy"});
  model.compile("adam", "binary_crossentropy");
  expect_error([&] { model.fit(data.x, slice(data.y, 0, 0, 9)); },
               {"x has 10 samples but y has 9"});
  expect_error([&] { model.fit(zeros({0, 2}), zeros({0})); }, {"no samples"});
  expect_error([&] { model.fit(data.x, data.y, {.batch_size = 0}); }, {"batch_size", "0"});
  expect_error([&] { model.fit(data.x, data.y, {.validation_split = 1}); },
               {"validation_split", "[0, 1)"});
  expect_error([&] { model.fit(data.x, data.y, {.validation_split = -0.1}); },
               {"validation_split"});
  expect_error(
      [&] { model.fit(slice(data.x, 0, 0, 1), slice(data.y, 0, 0, 1), {.validation_split = 0.5}); },
      {"1 samples", "validation_split=0.5"});
  Tensor bad = data.y.copy();
  bad.data<float>()[7] = 2;
  expect_error([&] { model.fit(data.x, bad, {.verbose = 0}); },
               {"binary_crossentropy", "label 2", "position 7"});
  expect_error([&] { model.predict(zeros({0, 2})); }, {"predict", "(0, 2)"});
}

// ---- Weight files ----------------------------------------------------------------------------

class WeightsFile : public testing_support::TempDirTest {
 protected:
  std::vector<std::string> files() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_))
      names.push_back(entry.path().filename().string());
    return names;
  }
};

TEST_F(WeightsFile, SaveThenLoadRestoresPredictions) {
  manual_seed(30);
  const Data data = comparison_data(8, 31);
  Sequential model = classifier();
  const Tensor before = model.predict(data.x);
  const std::string path = (dir_ / "model.weights").string();
  model.save_weights(path);
  EXPECT_EQ(files(), std::vector<std::string>{"model.weights"});  // no temporary file left
  for (Weight* w : model.weights()) w->value.assign_(w->value + 1.0);
  ASSERT_FALSE(allclose(model.predict(data.x), before));
  model.load_weights(path);
  EXPECT_TRUE(allclose(model.predict(data.x), before, 0, 0));

  // A second model of the same architecture loads it too, and overwriting works.
  Sequential twin = classifier();
  twin.load_weights(path);
  EXPECT_TRUE(allclose(twin.predict(data.x), before, 0, 0));
  twin.save_weights(path);
  EXPECT_EQ(files(), std::vector<std::string>{"model.weights"});
}

TEST_F(WeightsFile, ADifferentModelIsRejected) {
  manual_seed(32);
  Sequential model = classifier();
  const std::string path = (dir_ / "model.weights").string();
  model.save_weights(path);
  Sequential wider{Dense(16).activation("relu").input_shape({2}), Dropout(0),
                   Dense(1).activation("sigmoid")};
  const std::vector<Values> untouched = weight_values(wider);
  expect_error([&] { wider.load_weights(path); },
               {"layer \"dense\"", "\"kernel\"", "(2, 8)", "(2, 16)", path});
  EXPECT_EQ(weight_values(wider), untouched);
  Sequential named{Dense(8).activation("relu").input_shape({2}).name("hidden"), Dropout(0),
                   Dense(1).activation("sigmoid")};
  expect_error([&] { named.load_weights(path); }, {"layer \"dense\"", "lacks"});
}

TEST_F(WeightsFile, ATruncatedFileIsRejected) {
  manual_seed(33);
  Sequential model = classifier();
  const std::string path = (dir_ / "model.weights").string();
  model.save_weights(path);
  std::string contents;
  {
    std::ifstream in(path, std::ios::binary);
    contents.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::string cut = (dir_ / "cut.weights").string();
  for (const size_t size : {size_t{0}, size_t{10}, contents.size() / 2, contents.size() - 1}) {
    std::ofstream(cut, std::ios::binary | std::ios::trunc) << contents.substr(0, size);
    expect_error([&] { model.load_weights(cut); }, {"load_weights", cut, "truncated"});
  }
  std::ofstream(cut, std::ios::binary | std::ios::trunc) << "not a weight file at all";
  expect_error([&] { model.load_weights(cut); }, {cut, "not a weft weight file"});
  expect_error([&] { model.load_weights((dir_ / "missing").string()); }, {"cannot open"});
}

// Found by tests/fuzz/fuzz_weights: a weight with a dimension 0 passed the size check whatever
// its other dimensions, whose product then overflowed the strides (UBSan).
TEST_F(WeightsFile, AnEmptyWeightWithHugeDimensionsIsRejected) {
  manual_seed(35);
  Sequential model = classifier();
  const auto u32 = [](uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); };
  const auto i64 = [](int64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); };
  const auto name = [&](const std::string& text) { return u32(text.size()) + text; };
  const std::string path = (dir_ / "huge.weights").string();
  std::ofstream(path, std::ios::binary)
      << std::string("WEFTWGT\0", 8) + u32(1) + u32(1) + name("embedding") + name("embeddings") +
             std::string(1, '\0') + u32(3) + i64(0) + i64(int64_t{1} << 40) + i64(int64_t{1} << 40);
  expect_error([&] { model.load_weights(path); }, {path, "embeddings", "too large"});
}

TEST_F(WeightsFile, SavingIntoAMissingFolderLeavesNothing) {
  manual_seed(34);
  Sequential model = classifier();
  const std::string path = (dir_ / "no_such_folder" / "model.weights").string();
  expect_error([&] { model.save_weights(path); }, {"save_weights", path});
  EXPECT_TRUE(files().empty());
  // A failure keeps an existing file as it was: renaming onto a folder fails.
  const std::string folder = (dir_ / "taken").string();
  fs::create_directories(folder + "/inside");
  expect_error([&] { model.save_weights(folder); }, {"save_weights", folder});
  EXPECT_EQ(files(), std::vector<std::string>{"taken"});
}

// ---- Quantize ------------------------------------------------------------------------------

// The nearest bfloat16 value to a float: its bits rounded to the upper 16, ties to even.
double nearest_bfloat16(float value) {
  const auto bits = std::bit_cast<std::uint32_t>(value);
  return std::bit_cast<float>((bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u);
}

// Every floating-point weight, of float32 and float64 models, becomes the value of the mode
// nearest it, kept in its dtype; predictions move by about the mode's precision.
TEST(Quantize, RoundsEveryWeightToTheNearestValueOfTheMode) {
  struct Mode {
    std::string name;
    double (*nearest)(double);           // for a float32 value
    double half_ulp, smallest_half_ulp;  // relative for normal values, absolute below them
    double rtol;                         // of the predictions
  };
  const Mode modes[] = {
      {"float16", [](double v) { return static_cast<double>(static_cast<_Float16>(v)); }, 0x1p-11,
       0x1p-25, 1e-2},
      {"bfloat16", [](double v) { return nearest_bfloat16(static_cast<float>(v)); }, 0x1p-8,
       0x1p-134, 5e-2}};
  for (const Mode& mode : modes)
    for (const DType dtype : {DType::f32, DType::f64}) {
      SCOPED_TRACE(fmt::format("{} {}", mode.name, dtype_name(dtype)));
      manual_seed(5);
      Sequential model{LSTM(6).dtype(dtype).input_shape({4, 3}), Dense(1).dtype(dtype)};
      const Tensor x = cast(randn({5, 4, 3}), dtype);
      const Tensor before = model.predict_on_batch(x);
      const std::vector<std::vector<double>> original = weight_values(model);
      model.quantize(mode.name);
      const std::vector<std::vector<double>> rounded = weight_values(model);
      ASSERT_EQ(rounded.size(), original.size());
      for (size_t w = 0; w < original.size(); ++w)
        for (size_t i = 0; i < original[w].size(); ++i) {
          const double value = original[w][i], got = rounded[w][i];
          // A float64 weight is rounded once, from its own value: compared where it is a float.
          if (dtype == DType::f32 || value == static_cast<float>(value)) {
            ASSERT_EQ(got, mode.nearest(value)) << "weight " << w << ", value " << i;
          }
          ASSERT_EQ(mode.nearest(got), got) << "weight " << w << ", value " << i;
          ASSERT_LE(std::abs(got - value),
                    std::max(std::abs(value) * mode.half_ulp, mode.smallest_half_ulp));
        }
      for (Weight* weight : model.weights()) EXPECT_EQ(weight->value.dtype(), dtype);
      EXPECT_TRUE(allclose(model.predict_on_batch(x), before, mode.rtol, 1e-3));
    }
}

// bfloat16's rounding at its edges: ties to even, subnormal values, the largest value.
TEST(Quantize, Bfloat16RoundsTiesToEvenAndKeepsSubnormalValues) {
  const float ties[] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -(1.0f + 0x1p-8f)};
  const float want[] = {1.0f, 1.0f + 4 * 0x1p-8f, -1.0f};
  const float subnormal = 0x1p-130f + 0x1p-140f, largest = 0x1.fep127f;
  Sequential model{Dense(3).use_bias(false).input_shape({2})};
  Tensor& kernel = model.weights()[0]->value;
  kernel.assign_(from_vector<float>({ties[0], ties[1], ties[2], subnormal, largest, 0.0f}, {2, 3}));
  model.quantize("bfloat16");
  EXPECT_EQ(kernel.to_vector<float>(),
            (std::vector<float>{want[0], want[1], want[2], 0x1p-130f, largest, 0.0f}));
}

TEST(Quantize, BadRequestsChangeNothing) {
  Sequential unbuilt{Dense(2)};
  expect_error([&] { unbuilt.quantize("float16"); }, {"no weights yet", "build()"});
  Sequential model{Dense(2).input_shape({3})};
  expect_error([&] { model.quantize("int8"); }, {"\"int8\"", "\"float16\"", "\"bfloat16\""});
  model.weights()[1]->value.data<float>()[1] = 70000.0f;  // the bias
  model.weights()[1]->value.mark_modified();
  const std::vector<std::vector<double>> before = weight_values(model);
  expect_error([&] { model.quantize("float16"); },
               {"\"dense/bias\"", "70000", "flat index 1", "65504", "no weight was changed"});
  EXPECT_EQ(weight_values(model), before);
  // float32's largest value rounds past bfloat16's.
  model.weights()[1]->value.data<float>()[1] = std::numeric_limits<float>::max();
  model.weights()[1]->value.mark_modified();
  expect_error([&] { model.quantize("bfloat16"); }, {"quantize(\"bfloat16\")", "\"dense/bias\"",
                                                     "flat index 1", "no weight was changed"});
  EXPECT_EQ(weight_values(model)[1][1], std::numeric_limits<float>::max());
}

TEST_F(WeightsFile, AnUnbuiltModelCannotSaveOrLoad) {
  Sequential model{Dense(2)};
  expect_error([&] { model.save_weights((dir_ / "w").string()); }, {"not been built"});
  expect_error([&] { model.load_weights((dir_ / "w").string()); }, {"not been built"});
}

}  // namespace
}  // namespace weft
