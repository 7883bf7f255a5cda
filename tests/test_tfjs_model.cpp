// load_model and save_model (models/tfjs_model.h) against TensorFlow.js: the fixtures in
// tests/data/tfjs were built, saved and predicted by TF.js 4.22 (tests/tfjs/gen_tfjs_models.mjs),
// and weft's saved models are loaded back by TF.js when Node.js and @tensorflow/tfjs are there.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_support.h"
#include "weft/models/files.h"
#include "weft/weft.h"

namespace weft {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing_support::expect_error;
using testing_support::TempDirTest;

const fs::path kFixtures = fs::path(WEFT_TEST_DATA_DIR) / "tfjs";

// Every case the generator writes.
const std::vector<std::string> kCases = {
    "text_preprocessing",   "stacked_lstm",      "sentiment_imdb",       "temperature_forecast",
    "compare_simple_rnn",   "compare_gru",       "simple_rnn_options",   "lstm_options",
    "gru_options",          "stateful_lstm",     "unknown_timesteps",    "bidirectional_concat",
    "bidirectional_sum",    "bidirectional_mul", "bidirectional_ave",    "masked_lstm_gru",
    "masked_bidirectional", "keras_converted",   "keras_gru_reset_after"};

// Two float32 implementations of the same maths agree to this.
constexpr double kAtol = 1e-5, kRtol = 1e-4;

Sequential load_eager(const fs::path& path) {
  Sequential model = load_model(path.string());
  model.jit_compile = false;  // the reference semantics; compiled steps are tested elsewhere
  return model;
}

// The model's predictions for x, `calls` times in a row (a stateful model goes on from the
// states the previous call left), one row per sample.
std::vector<std::vector<double>> predict_rows(Sequential& model, const Tensor& x, int64_t calls) {
  std::vector<std::vector<double>> rows;
  for (int64_t c = 0; c < calls; ++c) {
    const std::vector<double> y = model.predict(x).to_vector<double>();
    const size_t width = y.size() / static_cast<size_t>(x.size(0));
    for (size_t r = 0; r < static_cast<size_t>(x.size(0)); ++r)
      rows.emplace_back(y.begin() + static_cast<int64_t>(r * width),
                        y.begin() + static_cast<int64_t>((r + 1) * width));
  }
  return rows;
}

std::vector<std::vector<double>> read_rows(const fs::path& path) {
  const CsvTable table = read_csv(path, {.header = false});
  std::vector<std::vector<double>> rows;
  for (int64_t r = 0; r < table.values.rows; ++r)
    rows.emplace_back(table.values.values.begin() + r * table.values.cols,
                      table.values.values.begin() + (r + 1) * table.values.cols);
  return rows;
}

void write_rows(const fs::path& path, const std::vector<std::vector<double>>& rows) {
  std::ofstream out(path);
  for (const auto& row : rows) out << fmt::format("{:.9g}\n", fmt::join(row, ","));
}

// ---- TF.js's models predict in weft what they predict in TF.js -----------------------------

class TfjsFixture : public testing::TestWithParam<std::string> {};

TEST_P(TfjsFixture, PredictsWhatTfjsPredicts) {
  const fs::path dir = kFixtures / GetParam();
  Sequential model = load_eager(dir / "model.json");
  const Tensor x = read_csv_batch(model, (dir / "input.csv").string());
  const auto expected = read_rows(dir / "expected.csv");
  ASSERT_EQ(expected.size() % static_cast<size_t>(x.size(0)), 0u);
  const auto got = predict_rows(model, x, static_cast<int64_t>(expected.size()) / x.size(0));
  ASSERT_EQ(got.size(), expected.size());
  double worst = 0;
  for (size_t r = 0; r < got.size(); ++r) {
    ASSERT_EQ(got[r].size(), expected[r].size()) << "row " << r;
    for (size_t i = 0; i < got[r].size(); ++i) {
      const double error = std::abs(got[r][i] - expected[r][i]);
      worst = std::max(worst, error);
      EXPECT_LE(error, kAtol + kRtol * std::abs(expected[r][i])) << "row " << r << " value " << i;
    }
  }
  RecordProperty("max_abs_difference", fmt::format("{:.3g}", worst));
  std::cout << GetParam() << ": max |weft - TF.js| = " << worst << "\n";
}

INSTANTIATE_TEST_SUITE_P(Cases, TfjsFixture, testing::ValuesIn(kCases),
                         [](const auto& test) { return test.param; });

// TF.js has no GRU with reset_after=true: the file's GRU must be weft's own GRU(reset_after)
// with the same weights, and the generator's float64 Keras equations (checked above) agree.
TEST(TfjsFormat, ResetAfterGruIsWeftsOwnGru) {
  Sequential loaded = load_eager(kFixtures / "keras_gru_reset_after" / "model.json");
  Sequential own{GRU(4).reset_after(true).input_shape({6, 3}), Dense(2)};
  own.jit_compile = false;
  ASSERT_EQ(own.weights().size(), loaded.weights().size());
  for (size_t i = 0; i < own.weights().size(); ++i)
    own.weights()[i]->value.assign_(loaded.weights()[i]->value);
  EXPECT_EQ(loaded.weights()[2]->value.shape(), (Shape{2, 12}));  // input and recurrent bias
  const Tensor x =
      read_csv_batch(loaded, (kFixtures / "keras_gru_reset_after" / "input.csv").string());
  EXPECT_EQ(loaded.predict(x).to_vector<float>(), own.predict(x).to_vector<float>());
}

TEST(TfjsFormat, SummaryShowsTheFilesNamesAndShapes) {
  const std::string summary =
      load_model((kFixtures / "keras_converted").string()).summary_string();  // the folder
  EXPECT_NE(summary.find("Model: \"sequential\""), std::string::npos) << summary;
  EXPECT_NE(summary.find("bidirectional (Bidirectiona  (None, 7, 6)"), std::string::npos)
      << summary;
  EXPECT_NE(summary.find("gru (GRU)"), std::string::npos) << summary;
}

// ---- weft's saved models ------------------------------------------------------------------

class SavedModel : public TempDirTest {};

// The names a model.json gives its layers and weights.
std::pair<std::vector<std::string>, std::vector<std::string>> file_names(const fs::path& file) {
  const json root = json::parse(std::ifstream(file));
  std::vector<std::string> layers, weights;
  for (const json& layer : root["modelTopology"]["config"]["layers"])
    layers.push_back(layer["config"]["name"]);
  for (const json& weight : root["weightsManifest"][0]["weights"])
    weights.push_back(weight["name"]);
  return {layers, weights};
}

// Load a Keras model, fine-tune it, save it, load it again: Keras's names stay, the tuned
// weights come back exactly.
TEST_F(SavedModel, FineTuningRoundTripKeepsKerasNames) {
  const fs::path source = kFixtures / "keras_converted";
  Sequential model = load_eager(source / "model.json");
  const Tensor x = read_csv_batch(model, (source / "input.csv").string());
  const std::vector<float> before = model.predict(x).to_vector<float>();
  model.compile("adam", "binary_crossentropy");
  model.fit(x, tensor({1, 0, 1, 0}, {4, 1}), {.epochs = 2, .batch_size = 2, .verbose = 0});
  const std::vector<float> tuned = model.predict(x).to_vector<float>();
  EXPECT_NE(tuned, before);

  model.save_model((dir_ / "tuned").string());
  Sequential reloaded = load_eager(dir_ / "tuned");
  EXPECT_EQ(reloaded.predict(x).to_vector<float>(), tuned);
  EXPECT_EQ(reloaded.summary_string(), model.summary_string());
  const auto [layers, weights] = file_names(dir_ / "tuned" / "model.json");
  EXPECT_EQ(layers, (std::vector<std::string>{"embedding", "bidirectional", "gru", "dense"}));
  EXPECT_EQ(weights,
            (std::vector<std::string>{
                "embedding/embeddings", "bidirectional/forward_lstm/kernel",
                "bidirectional/forward_lstm/recurrent_kernel", "bidirectional/forward_lstm/bias",
                "bidirectional/backward_lstm/kernel",
                "bidirectional/backward_lstm/recurrent_kernel", "bidirectional/backward_lstm/bias",
                "gru/kernel", "gru/recurrent_kernel", "gru/bias", "dense/kernel", "dense/bias"}));
}

// Every chapter model, as weft builds it, comes back from its file the same.
TEST_F(SavedModel, ChapterModelsRoundTrip) {
  for (const ChapterModel& chapter : chapter_models()) {
    SCOPED_TRACE(chapter.name);
    const ChapterModel short_model = chapter.with_timesteps(6);
    Sequential model = short_model.build();
    model.jit_compile = false;
    const fs::path file = dir_ / (chapter.name + ".json");  // a .json path: shards beside it
    model.save_model(file.string());
    EXPECT_TRUE(fs::exists(dir_ / (chapter.name + "-group1-shard1of1.bin")));
    Sequential loaded = load_eager(file);
    Generator generator(3);
    const Tensor x = sample_batch(short_model, 2, generator);
    EXPECT_EQ(loaded.summary_string(), model.summary_string());
    EXPECT_EQ(loaded.count_params(), chapter.keras_params);
    EXPECT_EQ(loaded.predict(x).to_vector<float>(), model.predict(x).to_vector<float>());
  }
}

// A model over 4 MiB is cut into shards of 4 MiB, as TF.js and Keras's converter cut it.
TEST_F(SavedModel, LargeModelsAreSharded) {
  Sequential model{Embedding(20000, 64).input_length(5), LSTM(8), Dense(1)};  // 5.1 MB
  model.save_model(dir_.string());
  EXPECT_EQ(fs::file_size(dir_ / "group1-shard1of2.bin"), 4u << 20);
  EXPECT_TRUE(fs::exists(dir_ / "group1-shard2of2.bin"));
  Sequential loaded = load_model(dir_.string());
  EXPECT_TRUE(allclose(loaded.weights()[0]->value, model.weights()[0]->value, 0, 0));
}

TEST_F(SavedModel, SaveLeavesNoTemporaryFiles) {
  Sequential model{Dense(2).input_shape({3})};
  model.save_model(dir_.string());
  model.save_model(dir_.string());  // over the old files
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir_)) files.push_back(entry.path().filename());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"group1-shard1of1.bin", "model.json"}));
}

TEST_F(SavedModel, LayersWithoutAFileFormAreErrors) {
  Sequential f64{Dense(2).dtype(DType::f64).input_shape({3})};
  expect_error([&] { f64.save_model(dir_.string()); },
               {"save_model", "dense", "float64", "float32"});
  Sequential unbuilt{Dense(2)};
  expect_error([&] { unbuilt.save_model(dir_.string()); }, {"has not been built"});
}

// Runs the generator's check mode on `dir`: 0 when TF.js predicts what weft wrote, 77 when
// Node.js or @tensorflow/tfjs is missing.
int tfjs_check(const fs::path& dir) {
  if (std::system("command -v node >/dev/null 2>&1") != 0) return 77;
  const int status =
      std::system(fmt::format("node '{}' --check '{}'", WEFT_TFJS_SCRIPT, dir.string()).c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool has_reset_after_gru(const Sequential& model) {
  return std::any_of(model.layers().begin(), model.layers().end(), [](const auto& layer) {
    const auto* gru = dynamic_cast<const GRU*>(layer.get());
    return gru != nullptr && gru->reset_after();
  });
}

// weft's saved models, their weights changed by a fit, load in TF.js and predict what weft
// predicts; so do the chapter's models as weft builds them.
TEST_F(SavedModel, WeftSavedModelsLoadInTfjs) {
  for (const std::string& name : kCases) {
    Sequential model = load_eager(kFixtures / name / "model.json");
    if (has_reset_after_gru(model)) continue;
    const Tensor x = read_csv_batch(model, (kFixtures / name / "input.csv").string());
    // Tuned on random targets, so that the weights TF.js reads are weft's own.
    Generator generator(11);
    Shape y_shape = model.output_shape();
    y_shape.insert(y_shape.begin(), x.size(0));
    model.compile("sgd", "mse");
    model.fit(x, randn(y_shape, {}, generator), {.batch_size = x.size(0), .verbose = 0});
    model.reset_states();
    const int64_t calls = name == "stateful_lstm" ? 2 : 1;
    const fs::path out = dir_ / name;
    model.save_model(out.string());
    fs::copy_file(kFixtures / name / "input.csv", out / "input.csv");
    write_rows(out / "expected.csv", predict_rows(model, x, calls));
  }
  for (const ChapterModel& chapter : chapter_models()) {
    const ChapterModel short_model = chapter.with_timesteps(8);
    Sequential model = short_model.build();
    model.jit_compile = false;
    if (has_reset_after_gru(model)) continue;  // TF.js 4.22 has no reset_after GRU
    Generator generator(5);
    const Tensor x = sample_batch(short_model, 2, generator);
    const fs::path out = dir_ / ("weft_" + chapter.name);
    model.save_model(out.string());
    const std::vector<double> values = x.to_vector<double>();
    const size_t width = values.size() / 2;
    write_rows(out / "input.csv", {{values.begin(), values.begin() + static_cast<int64_t>(width)},
                                   {values.begin() + static_cast<int64_t>(width), values.end()}});
    write_rows(out / "expected.csv", predict_rows(model, x, 1));
  }
  const int code = tfjs_check(dir_);
  if (code == 77)
    GTEST_SKIP() << "Node.js or @tensorflow/tfjs is not installed (npm ci in tests/tfjs)";
  EXPECT_EQ(code, 0) << "TF.js's check of weft's saved models failed (see its lines above)";
}

// ---- Bad files ----------------------------------------------------------------------------

struct BadFile {
  std::string name;
  // Spoils a copy of the keras_converted fixture in `dir`; returns the path given to load_model.
  std::function<fs::path(const fs::path& dir)> spoil;
  std::vector<std::string> fragments;  // in the message, besides the file's name
  std::string file = "model.json";     // the file the message names
};

json read_json(const fs::path& file) { return json::parse(std::ifstream(file)); }
void write_json(const fs::path& file, const json& value) { std::ofstream(file) << value.dump(); }

// Applies `edit` to model.json's parsed contents.
std::function<fs::path(const fs::path&)> edit_json(std::function<void(json&)> edit) {
  return [edit](const fs::path& dir) {
    json root = read_json(dir / "model.json");
    edit(root);
    write_json(dir / "model.json", root);
    return dir / "model.json";
  };
}

json& layer_config(json& root, size_t index) {
  return root["modelTopology"]["model_config"]["config"]["layers"][index]["config"];
}
// Sets option `key` of the model config's layer `index` (the InputLayer is 0) to `value`.
std::function<fs::path(const fs::path&)> set_option(size_t index, const std::string& key,
                                                    const json& value) {
  return edit_json([=](json& root) { layer_config(root, index)[key] = value; });
}

json& weight_spec(json& root, size_t index) { return root["weightsManifest"][0]["weights"][index]; }

const std::vector<BadFile> kBadFiles = {
    {"truncated_shard",
     [](const fs::path& dir) {
       fs::resize_file(dir / "group1-shard1of1.bin", 600);
       return dir / "model.json";
     },
     {"is truncated",
      "it ends in weight \"bidirectional/forward_lstm/lstm_cell_1/recurrent_kernel\""},
     "group1-shard1of1.bin"},
    {"shard_longer_than_manifest",
     [](const fs::path& dir) {
       std::ofstream(dir / "group1-shard1of1.bin", std::ios::app) << "12345678";
       return dir / "model.json";
     },
     {"the manifest of", "and its shards disagree", "but", "group1-shard1of1.bin"}},
    {"manifest_shape_disagrees_with_config",
     set_option(1, "output_dim", 3),
     {"weight \"embedding/embeddings\" has shape (20, 4) in the manifest", "takes (20, 3)"}},
    // A config asking for more values than the file holds stops before allocating them.
    {"layer_larger_than_the_weights",
     set_option(4, "units", 3),
     {"layer \"dense\" (Dense)",
      "weight \"kernel\" of shape (4, 3) would hold more values than "
      "the 409 the model's weights hold"}},
    {"size_larger_than_the_weights",
     set_option(1, "input_dim", int64_t{1} << 50),
     {"layer \"embedding\" (Embedding)",
      "option \"input_dim\" = 1125899906842624 is larger than "
      "the 409 values"}},
    {"missing_shard",
     [](const fs::path& dir) {
       fs::remove(dir / "group1-shard1of1.bin");
       return dir / "model.json";
     },
     {"names the weight shard", "group1-shard1of1.bin", "which is missing"}},
    {"missing_model_json",
     [](const fs::path& dir) { return dir / "absent" / "model.json"; },
     {"cannot open", "No such file"},
     "absent/model.json"},
    {"unknown_dtype",
     edit_json([](json& root) { weight_spec(root, 0)["dtype"] = "float16"; }),
     {"weight \"embedding/embeddings\" has dtype \"float16\"", "weft reads float32"}},
    {"quantized_weights",
     edit_json([](json& root) {
       weight_spec(root, 0)["quantization"] = {{"dtype", "uint8"}, {"scale", 0.1}, {"min", 0}};
     }),
     {"weight \"embedding/embeddings\" is quantized"}},
    {"unknown_layer_class",
     edit_json([](json& root) {
       root["modelTopology"]["model_config"]["config"]["layers"][3]["class_name"] = "Conv1D";
     }),
     {"layer \"gru\" (Conv1D)", "weft has no layer class \"Conv1D\""}},
    {"unknown_wrapped_class",
     edit_json([](json& root) { layer_config(root, 2)["layer"]["class_name"] = "ConvLSTM1D"; }),
     {"layer \"bidirectional\" (Bidirectional)", "the wrapped layer \"lstm\" (ConvLSTM1D)",
      "weft has no layer class \"ConvLSTM1D\""}},
    {"json_syntax_error",
     [](const fs::path& dir) {
       const std::string text = read_file((dir / "model.json").string(), "test");
       std::ofstream(dir / "model.json") << text.substr(0, text.size() / 2);
       return dir / "model.json";
     },
     {"is not valid JSON", "parse error"}},
    {"option_weft_lacks",
     set_option(3, "kernel_regularizer", {{"class_name", "L2"}, {"config", {{"l2", 0.01}}}}),
     {"layer \"gru\" (GRU)", "option \"kernel_regularizer\"", "is not supported by weft"}},
    {"time_major",
     set_option(3, "time_major", true),
     {"layer \"gru\" (GRU)", "option \"time_major\" = true is not supported"}},
    {"activation_weft_lacks",
     set_option(4, "activation", "selu"),
     {"layer \"dense\" (Dense)", "unknown activation \"selu\""}},
    {"merge_mode_none",
     set_option(2, "merge_mode", nullptr),
     {"layer \"bidirectional\"", "merge_mode = null"}},
    {"frozen_layer",
     set_option(1, "trainable", false),
     {"layer \"embedding\" (Embedding)", "trainable = false"}},
    {"option_of_the_wrong_type",
     set_option(3, "units", "four"),
     {"layer \"gru\" (GRU)", "option \"units\" has the wrong type: \"four\""}},
    {"weight_missing_from_manifest",
     edit_json([](json& root) { weight_spec(root, 11)["name"] = "dense/offset"; }),
     {"has no weight \"dense/bias\" in its manifest"}},
    {"functional_model",
     edit_json(
         [](json& root) { root["modelTopology"]["model_config"]["class_name"] = "Functional"; }),
     {"holds a \"Functional\" model", "weft loads Sequential models"}},
    {"graph_model",
     edit_json([](json& root) { root["format"] = "graph-model"; }),
     {"has format \"graph-model\""}},
    {"negative_dimension",
     edit_json([](json& root) {
       weight_spec(root, 0)["shape"] = {-20, 4};
     }),
     {"weight \"embedding/embeddings\" has shape [-20,4]"}},
    {"huge_dimension",
     edit_json([](json& root) {
       weight_spec(root, 0)["shape"] = {1ll << 40, 1ll << 40};
     }),
     {"is truncated", "embedding/embeddings"},
     "group1-shard1of1.bin"},
};

class BadModelFile : public TempDirTest, public testing::WithParamInterface<BadFile> {};

TEST_P(BadModelFile, IsAnErrorNamingTheFileAndTheFault) {
  fs::copy(kFixtures / "keras_converted", dir_);
  const fs::path path = GetParam().spoil(dir_);
  std::vector<std::string> fragments = GetParam().fragments;
  fragments.push_back("load_model");
  fragments.push_back((dir_ / GetParam().file).string());
  expect_error([&] { load_model(path.string()); }, fragments);
}

INSTANTIATE_TEST_SUITE_P(Cases, BadModelFile, testing::ValuesIn(kBadFiles),
                         [](const auto& test) { return test.param.name; });

}  // namespace
}  // namespace weft
