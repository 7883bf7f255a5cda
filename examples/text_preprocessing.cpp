// The chapter's "Text Preprocessing Pipeline for RNN": Tokenizer, texts_to_sequences,
// pad_sequences and an Embedding + LSTM classifier on six reviews.
//
//   build/examples/text_preprocessing
//
// The training curves go to text_preprocessing_history.png and .svg in the current folder.
#include <fmt/ranges.h>
#include <weft/weft.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "curves.h"
#include "numpy_print.h"

using namespace weft;
using namespace weft::examples;

namespace {

// How Python's repr() prints a str: single quotes unless the text holds one and no double quote.
std::string py_repr(const std::string& text) {
  const bool has_single = text.find('\'') != std::string::npos;
  const bool has_double = text.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (char c : text) {
    if (c == '\\' || c == quote) out += '\\';
    out += c;
  }
  return out + quote;
}

}  // namespace

int main() {
  manual_seed(42);

  // Sample text data.
  const std::vector<std::string> texts = {
      "This movie is amazing and I loved every moment of it",
      "Terrible film, waste of time and money",
      "Great acting and wonderful storyline, highly recommended",
      "Boring and predictable, would not watch again",
      "The best movie I have seen this year, brilliant performances",
      "Awful movie with bad acting and poor direction",
  };
  const std::vector<int64_t> labels = {1, 0, 1, 0, 1, 0};  // 1=positive, 0=negative

  // Step 1: Tokenization.
  Tokenizer tokenizer = Tokenizer().num_words(1000).oov_token("<OOV>");
  tokenizer.fit_on_texts(texts);

  const WordIndex& word_index = tokenizer.word_index();
  fmt::print("Vocabulary size: {}\n", word_index.size());
  std::vector<std::string> top;
  for (size_t i = 0; i < std::min<size_t>(10, word_index.size()); ++i)
    top.push_back(fmt::format("{}: {}", py_repr(word_index[i].first), word_index[i].second));
  fmt::print("Top 10 words: {{{}}}\n", fmt::join(top, ", "));

  // Step 2: Convert texts to sequences of integers.
  const auto sequences = tokenizer.texts_to_sequences(texts);
  fmt::print("\nOriginal: '{}'\n", texts[0]);
  fmt::print("Sequence: [{}]\n", fmt::join(sequences[0], ", "));

  // Step 3: Pad sequences to uniform length.
  constexpr int64_t kMaxLen = 15;
  const IntMatrix padded =
      pad_sequences(sequences, {.maxlen = kMaxLen, .padding = "post", .truncating = "post"});

  fmt::print("\nPadded sequences shape: {}\n", shape_str({padded.rows, padded.cols}));
  fmt::print("First padded: {}\n", numpy_row(padded.row(0)));
  fmt::print("(0s are padding, added at the end with padding='post')\n");

  // Step 4: Build model with Embedding layer.
  Sequential model{
      Embedding(/*input_dim=*/1000, /*output_dim=*/16).input_length(kMaxLen),
      LSTM(32),
      Dense(1).activation("sigmoid"),
  };
  model.compile(Adam(), "binary_crossentropy", {"accuracy"});
  model.summary();

  // Train (on this tiny dataset, just for demonstration).
  const History history =
      model.fit(to_tensor(padded), to_tensor(labels, DType::f32), {.epochs = 50, .verbose = 0});
  write_curves(history, "text_preprocessing", "Text preprocessing LSTM: training curves");

  // Test on new text.
  const std::vector<std::string> new_texts = {"This is a great and amazing movie",
                                              "Bad and boring film"};
  const auto new_seq = tokenizer.texts_to_sequences(new_texts);
  const IntMatrix new_padded = pad_sequences(new_seq, {.maxlen = kMaxLen, .padding = "post"});

  const std::vector<double> predictions = model.predict(to_tensor(new_padded)).to_vector<double>();
  for (size_t i = 0; i < new_texts.size(); ++i) {
    const char* sentiment = predictions[i] > 0.5 ? "Positive" : "Negative";
    fmt::print("'{}' -> {} ({:.3f})\n", new_texts[i], sentiment, predictions[i]);
  }
  return 0;
}
