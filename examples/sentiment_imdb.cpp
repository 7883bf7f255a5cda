// The chapter's "Sentiment Analysis: Movie Review Classification with LSTM" on IMDB.
//
//   build/examples/sentiment_imdb [PATH/TO/aclImdb | --spam data/spam-assassin] [--epochs N]
//                                 [--samples N]
//
// Keras downloads imdb.npz; weft reads the raw corpus instead, the aclImdb folder of
// https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz, and encodes it as
// imdb.load_data does (see load_imdb_folder in models/datasets.h). The folder is the first
// argument, or $WEFT_IMDB_DIR. --spam runs the same model on the SpamAssassin e-mails of
// tools/fetch_data.sh (spam or ham) instead.
// The training curves go to sentiment_imdb_history.png and .svg in the current folder.
// --epochs N   train for at most N epochs instead of the chapter's 10.
// --samples N  keep only the first N training and N test reviews (after Keras's shuffle), for a
//              quick run; the default keeps all 25,000 of each.
#include <fmt/ranges.h>
#include <weft/weft.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "imdb_example.h"
#include "numpy_print.h"

using namespace weft;
using namespace weft::examples;

namespace {

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
  const Tensor y_train = to_tensor(imdb.train.labels, DType::f32);
  const Tensor y_test = to_tensor(imdb.test.labels, DType::f32);

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
  const History history =
      model.fit(X_train, y_train,
                {.epochs = args.epochs.value_or(10),
                 .batch_size = 64,
                 .validation_split = 0.2,
                 .callbacks = {EarlyStopping{
                     .monitor = "val_loss", .patience = 2, .restore_best_weights = true}}});
  const double seconds =
      std::accumulate(history.seconds_per_epoch.begin(), history.seconds_per_epoch.end(), 0.0);
  fmt::print("Trained {} epochs in {:.1f} s ({:.1f} s per epoch)\n", history.epochs_run, seconds,
             seconds / history.epochs_run);
  write_curves(history, "sentiment_imdb", "Sentiment LSTM: training curves");

  // Evaluate.
  const Logs scores = model.evaluate(X_test, y_test);
  fmt::print("\nTest accuracy: {:.4f}\n", scores.at("accuracy"));

  // Predict on samples.
  const int64_t shown = std::min<int64_t>(5, X_test.size(0));
  const std::vector<double> predictions =
      model.predict(slice(X_test, 0, 0, shown)).to_vector<double>();
  const std::vector<int64_t>& labels = imdb.test.labels;
  for (size_t i = 0; i < predictions.size(); ++i) {
    const char* sentiment = label_name(args, predictions[i] > 0.5 ? 1 : 0);
    const char* actual = label_name(args, labels[i]);
    fmt::print("Predicted: {} ({:.3f}), Actual: {}\n", sentiment, predictions[i], actual);
  }
  return 0;
}
