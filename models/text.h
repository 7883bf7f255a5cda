// Text preprocessing as Keras does it (keras_preprocessing 1.1): Tokenizer, text_to_word_sequence
// and pad_sequences, on plain containers so data can be prepared before any tensor exists.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace weft {

// A dense row-major matrix: element (r, c) is values[r * cols + c]. The flat layout is what a
// tensor of shape (rows, cols) holds, so conversion is a copy of `values`.
template <typename T>
struct Matrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<T> values;

  T& operator()(int64_t r, int64_t c) { return values[static_cast<size_t>(r * cols + c)]; }
  const T& operator()(int64_t r, int64_t c) const {
    return values[static_cast<size_t>(r * cols + c)];
  }
  std::span<const T> row(int64_t r) const {
    return std::span<const T>(values).subspan(static_cast<size_t>(r * cols),
                                              static_cast<size_t>(cols));
  }
};
using IntMatrix = Matrix<int64_t>;
using DoubleMatrix = Matrix<double>;

// Keras's default `filters`: ASCII punctuation except the apostrophe, plus tab and newline.
inline constexpr std::string_view kDefaultFilters = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n";

// Python's str.lower of UTF-8 text: Unicode's full lowercase mapping (through ICU), so "É"
// becomes "é", "ẞ" "ß", "İ" "i" + U+0307, and a capital sigma ending a word "ς". Throws
// weft::Error for invalid UTF-8, naming the first bad byte.
std::string python_lower(std::string_view text);

// The offset of the first byte of `text` that does not start a valid UTF-8 character (as
// Python's strict decoder sees it: no overlong forms, surrogates or code points past U+10FFFF),
// if there is one.
std::optional<size_t> invalid_utf8_at(std::string_view text);

// Keras's text_to_word_sequence: lowercase (if `lower`, as python_lower), replace every
// character of `filters` by `split`, split on `split`, drop empty pieces. Text, filters and
// split are UTF-8 (Python strings): a filter character may be any code point, and invalid
// UTF-8 in any of them throws weft::Error naming the byte.
std::vector<std::string> text_to_word_sequence(std::string_view text,
                                               std::string_view filters = kDefaultFilters,
                                               bool lower = true, std::string_view split = " ");

// Ordered word -> index map with Python dict semantics: iteration follows first insertion of a
// word, and a word given twice keeps its first position but takes its last index.
class WordIndex {
 public:
  using Entry = std::pair<std::string, int64_t>;

  WordIndex() = default;
  explicit WordIndex(std::vector<Entry> pairs);  // like Python's dict(pairs)

  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const Entry& operator[](size_t position) const { return entries_[position]; }

  std::optional<int64_t> find(std::string_view word) const;
  int64_t at(std::string_view word) const;  // throws weft::Error for an unknown word
  // Keras's index_word: the word holding `index`, if any.
  std::optional<std::string_view> word(int64_t index) const;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t, Hash, std::equal_to<>> position_;
  std::unordered_map<int64_t, size_t> position_of_index_;
};

// keras_preprocessing.text.Tokenizer (word level). Options are set like Keras's keyword
// arguments: `Tokenizer tok = Tokenizer().num_words(1000).oov_token("<OOV>");`
class Tokenizer {
 public:
  // Only indices below num_words are emitted (so the top num_words - 1 words). Default: all.
  // Must be positive; Keras would read 0 as "all" and a negative value as "none".
  Tokenizer& num_words(int64_t n);
  Tokenizer& filters(std::string chars);    // default kDefaultFilters
  Tokenizer& lower(bool on);                // default true
  Tokenizer& split(std::string separator);  // default " "; must not be empty
  // Takes index 1 at fit time and stands for unknown or cut words. Default: none (dropped).
  Tokenizer& oov_token(std::string token);

  std::optional<int64_t> num_words() const { return num_words_; }
  const std::string& filters() const { return filters_; }
  bool lower() const { return lower_; }
  const std::string& split() const { return split_; }
  const std::optional<std::string>& oov_token() const { return oov_token_; }

  // Adds the texts' words to the counts (calls accumulate, as in Keras) and rebuilds
  // word_index: by count, descending, ties in order of first appearance, from index 1.
  void fit_on_texts(const std::vector<std::string>& texts);

  // Throw weft::Error before fit_on_texts, or when oov_token was set after fitting (Keras
  // would emit None for it).
  std::vector<std::vector<int64_t>> texts_to_sequences(const std::vector<std::string>& texts) const;
  std::vector<std::string> sequences_to_texts(
      const std::vector<std::vector<int64_t>>& sequences) const;

  const WordIndex& word_index() const { return word_index_; }
  std::optional<std::string_view> index_word(int64_t index) const {
    return word_index_.word(index);
  }
  // Each word with its count, in order of first appearance.
  const std::vector<std::pair<std::string, int64_t>>& word_counts() const { return word_counts_; }
  int64_t document_count() const { return document_count_; }

 private:
  std::optional<int64_t> oov_index() const;

  std::optional<int64_t> num_words_ = {};
  std::string filters_{kDefaultFilters};
  bool lower_ = true;
  std::string split_ = " ";
  std::optional<std::string> oov_token_;

  bool fitted_ = false;
  int64_t document_count_ = 0;
  std::vector<std::pair<std::string, int64_t>> word_counts_;
  std::unordered_map<std::string, size_t> count_position_;
  WordIndex word_index_;
};

struct PadOptions {
  // Default: the longest sequence's length. Must be positive if given.
  std::optional<int64_t> maxlen = std::nullopt;
  std::string padding = "pre";     // "pre" or "post": where the padding values go
  std::string truncating = "pre";  // "pre" or "post": which end of a long sequence is cut off
  int64_t value = 0;
};

// keras_preprocessing.sequence.pad_sequences: a (sequences.size(), maxlen) matrix. Unlike
// Keras, options are checked even when no sequence needs them, and an empty list without
// maxlen gives a (0, 0) matrix instead of an error.
IntMatrix pad_sequences(const std::vector<std::vector<int64_t>>& sequences,
                        const PadOptions& options = {});

}  // namespace weft
