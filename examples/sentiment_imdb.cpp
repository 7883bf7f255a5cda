// The chapter's "Sentiment Analysis: Movie Review Classification with LSTM" on IMDB.
//
//   build/examples/sentiment_imdb [PATH/TO/aclImdb] [--epochs N] [--samples N]
//
// Keras downloads imdb.npz; weft reads the raw corpus instead, the aclImdb folder of
// https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz, and encodes it as
// imdb.load_data does (see load_imdb_folder in models/datasets.h). The folder is the first
// argument, or $WEFT_IMDB_DIR.
// --epochs N   train for at most N epochs instead of the chapter's 10.
// --samples N  keep only the first N training and N test reviews (after Keras's shuffle), for a
//              quick run; the default keeps all 25,000 of each.
#include <fmt/ranges.h>
#include <weft/weft.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

using namespace weft;
namespace fs = std::filesystem;

namespace {

// ---- The IMDB plumbing shared by the chapter's IMDB programs ----------------------------------

struct ImdbArgs {
  std::string folder;              // the aclImdb folder; empty when not given
  std::optional<int> epochs;       // --epochs
  std::optional<int64_t> samples;  // --samples
};

[[noreturn]] void usage(const char* program) {
  fmt::print(stderr, "usage: {} [PATH/TO/aclImdb] [--epochs N] [--samples N]\n", program);
  std::exit(2);
}

template <typename T>
T positive_number(const char* program, std::string_view text) {
  T value{};
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 1) usage(program);
  return value;
}

ImdbArgs parse_args(int argc, char** argv) {
  ImdbArgs args;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--epochs" && i + 1 < argc) {
      args.epochs = positive_number<int>(argv[0], argv[++i]);
    } else if (arg == "--samples" && i + 1 < argc) {
      args.samples = positive_number<int64_t>(argv[0], argv[++i]);
    } else if (!arg.starts_with("-") && args.folder.empty()) {
      args.folder = arg;
    } else {
      usage(argv[0]);
    }
  }
  if (args.folder.empty()) {
    if (const char* env = std::getenv("WEFT_IMDB_DIR")) args.folder = env;
  }
  return args;
}

// Exits with status 2 and says where to get the corpus when `folder` is not an aclImdb folder.
void require_imdb_folder(const std::string& folder, const char* program) {
  bool complete = !folder.empty();
  for (const char* sub : {"train/pos", "train/neg", "test/pos", "test/neg"})
    complete = complete && fs::is_directory(fs::path(folder) / sub);
  if (complete) return;
  if (folder.empty())
    fmt::print(stderr, "{}: no IMDB folder given.\n", program);
  else
    fmt::print(stderr, "{}: '{}' is not an aclImdb folder.\n", program, folder);
  fmt::print(stderr,
             "This program reads the raw IMDB corpus (Keras downloads imdb.npz; weft encodes the\n"
             "raw reviews the same way). Expected layout, one review per .txt file:\n"
             "  aclImdb/train/pos/*.txt  aclImdb/train/neg/*.txt\n"
             "  aclImdb/test/pos/*.txt   aclImdb/test/neg/*.txt\n"
             "Get it from https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz\n"
             "(tar xzf aclImdb_v1.tar.gz), then run\n"
             "  {} path/to/aclImdb\n"
             "or set WEFT_IMDB_DIR=path/to/aclImdb.\n",
             program);
  std::exit(2);
}

ImdbDataset load_imdb(const ImdbArgs& args, const char* program, int64_t num_words) {
  require_imdb_folder(args.folder, program);
  ImdbDataset data;
  try {
    data = load_imdb_folder(args.folder, {.num_words = num_words});
  } catch (const Error& e) {
    fmt::print(stderr, "{}: cannot read the IMDB folder: {}\n", program, e.what());
    std::exit(2);
  }
  if (args.samples) {
    for (LabeledSequences* split : {&data.train, &data.test}) {
      const auto n = static_cast<size_t>(
          std::min<int64_t>(*args.samples, static_cast<int64_t>(split->sequences.size())));
      split->sequences.resize(n);
      split->labels.resize(n);
    }
  }
  return data;
}

Tensor to_tensor(const IntMatrix& m) { return from_vector(m.values, {m.rows, m.cols}); }

Tensor labels_tensor(const std::vector<int64_t>& labels) {
  const std::vector<float> values(labels.begin(), labels.end());
  return from_vector(values, {static_cast<int64_t>(values.size())});
}

// ------------------------------------------------------------------------------------------------

// How numpy prints a 1-D integer array: every value right-aligned to the widest, within [ ].
std::string numpy_row(std::span<const int64_t> row) {
  size_t width = 0;
  for (int64_t v : row) width = std::max(width, std::to_string(v).size());
  std::string out = "[";
  for (size_t i = 0; i < row.size(); ++i)
    out += fmt::format("{}{:>{}}", i == 0 ? "" : " ", row[i], width);
  return out + "]";
}

// np.bincount: how often each value 0..max occurs.
std::vector<int64_t> bincount(const std::vector<int64_t>& values) {
  std::vector<int64_t> counts;
  for (int64_t v : values) {
    if (static_cast<size_t>(v) >= counts.size()) counts.resize(static_cast<size_t>(v) + 1);
    ++counts[static_cast<size_t>(v)];
  }
  return counts;
}

}  // namespace

int main(int argc, char** argv) {
  const ImdbArgs args = parse_args(argc, argv);
  manual_seed(42);

  // Load IMDB dataset (50,000 movie reviews, binary sentiment).
  const ImdbDataset imdb = load_imdb(args, argv[0], /*num_words=*/10000);  // 10,000 most frequent

  fmt::print("Training samples: {}\n", imdb.train.sequences.size());
  fmt::print("Test samples: {}\n", imdb.test.sequences.size());
  fmt::print("Sample review length: {} words\n", imdb.train.sequences[0].size());
  fmt::print("Label distribution: {}\n", numpy_row(bincount(imdb.train.labels)));

  // Pad sequences to uniform length.
  constexpr int64_t kMaxLen = 200;
  const Tensor X_train = to_tensor(pad_sequences(imdb.train.sequences, {.maxlen = kMaxLen}));
  const Tensor X_test = to_tensor(pad_sequences(imdb.test.sequences, {.maxlen = kMaxLen}));
  const Tensor y_train = labels_tensor(imdb.train.labels);
  const Tensor y_test = labels_tensor(imdb.test.labels);

  fmt::print("Padded shape: {}\n", shape_str(X_train.shape()));  // (25000, 200)

  // Build LSTM model.
  Sequential model{
      Embedding(/*input_dim=*/10000, /*output_dim=*/64).input_length(kMaxLen),
      Bidirectional(LSTM(64).return_sequences(true)),
      Dropout(0.3),
      LSTM(32),
      Dropout(0.3),
      Dense(32).activation("relu"),
      Dense(1).activation("sigmoid"),  // Binary classification
  };

  model.compile(Adam(), "binary_crossentropy", {"accuracy"});

  model.summary();

  // Train.
  model.fit(X_train, y_train,
            {.epochs = args.epochs.value_or(10),
             .batch_size = 64,
             .validation_split = 0.2,
             .callbacks = {EarlyStopping{
                 .monitor = "val_loss", .patience = 2, .restore_best_weights = true}}});

  // Evaluate.
  const Logs scores = model.evaluate(X_test, y_test);
  fmt::print("\nTest accuracy: {:.4f}\n", scores.at("accuracy"));

  // Predict on samples.
  const int64_t shown = std::min<int64_t>(5, X_test.size(0));
  const std::vector<double> predictions =
      model.predict(slice(X_test, 0, 0, shown)).to_vector<double>();
  const std::vector<int64_t>& labels = imdb.test.labels;
  for (size_t i = 0; i < predictions.size(); ++i) {
    const char* sentiment = predictions[i] > 0.5 ? "Positive" : "Negative";
    const char* actual = labels[i] == 1 ? "Positive" : "Negative";
    fmt::print("Predicted: {} ({:.3f}), Actual: {}\n", sentiment, predictions[i], actual);
  }
  return 0;
}
