#include "weft/models/text.h"

#include <unicode/locid.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <array>
#include <numeric>

#include "weft/runtime/error.h"

namespace weft {
namespace {

// Bytes in the character starting at text[i] of valid UTF-8.
size_t char_length(std::string_view text, size_t i) {
  const auto lead = static_cast<unsigned char>(text[i]);
  return lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

bool is_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// Python cannot hold invalid UTF-8 in a str: its decoder stops there. So does weft.
void check_utf8(std::string_view text, std::string_view what) {
  const auto at = invalid_utf8_at(text);
  WEFT_CHECK(!at,
             "text_to_word_sequence: {} is not valid UTF-8: byte {} (0x{:02X}) starts no "
             "character",
             what, *at, static_cast<unsigned char>(text[*at]));
}

// The filter characters: a table for single bytes, a short list for multi-byte characters.
class FilterSet {
 public:
  explicit FilterSet(std::string_view filters) {
    for (size_t i = 0; i < filters.size();) {
      const size_t n = char_length(filters, i);
      if (n == 1) {
        single_[static_cast<unsigned char>(filters[i])] = true;
      } else {
        multi_.push_back(filters.substr(i, n));
      }
      i += n;
    }
  }
  bool contains(std::string_view ch) const {
    if (ch.size() == 1) return single_[static_cast<unsigned char>(ch[0])];
    return std::find(multi_.begin(), multi_.end(), ch) != multi_.end();
  }

 private:
  std::array<bool, 256> single_{};
  std::vector<std::string_view> multi_;
};

}  // namespace

std::optional<size_t> invalid_utf8_at(std::string_view text) {
  if (is_ascii(text)) return std::nullopt;
  const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
  const auto length = static_cast<int64_t>(text.size());
  for (int64_t i = 0; i < length;) {
    const int64_t start = i;
    UChar32 c = 0;
    U8_NEXT(bytes, i, length, c);
    if (c < 0) return static_cast<size_t>(start);
  }
  return std::nullopt;
}

std::string python_lower(std::string_view text) {
  std::string lowered(text);
  if (is_ascii(text)) {
    for (char& c : lowered) c = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    return lowered;
  }
  check_utf8(text, "the text");
  WEFT_CHECK(text.size() <= static_cast<size_t>(INT32_MAX), "python_lower: {} bytes are too many",
             text.size());
  // The root locale: Unicode's full, language-independent mapping, with its one context rule
  // (final sigma), as CPython's str.lower.
  icu::UnicodeString wide = icu::UnicodeString::fromUTF8(
      icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  wide.toLower(icu::Locale::getRoot());
  lowered.clear();
  wide.toUTF8String(lowered);
  return lowered;
}

std::vector<std::string> text_to_word_sequence(std::string_view text, std::string_view filters,
                                               bool lower, std::string_view split) {
  // Python's str.split raises on an empty separator too.
  WEFT_CHECK(!split.empty(), "text_to_word_sequence: split must not be empty");
  check_utf8(filters, "filters");
  check_utf8(split, "split");
  const FilterSet filter_set(filters);
  // Keras lowercases first, so filters are matched against the lowered text.
  std::string lowered;
  if (lower) {
    lowered = python_lower(text);
    text = lowered;
  } else {
    check_utf8(text, "the text");
  }
  std::string translated;
  translated.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t n = char_length(text, i);
    const std::string_view ch = text.substr(i, n);
    translated += filter_set.contains(ch) ? split : ch;
    i += n;
  }
  std::vector<std::string> words;
  for (size_t start = 0;;) {
    const size_t end = translated.find(split, start);
    const size_t stop = end == std::string::npos ? translated.size() : end;
    if (stop > start) words.push_back(translated.substr(start, stop - start));
    if (end == std::string::npos) break;
    start = end + split.size();
  }
  return words;
}

WordIndex::WordIndex(std::vector<Entry> pairs) {
  for (auto& [word, index] : pairs) {
    const auto [it, inserted] = position_.try_emplace(word, entries_.size());
    if (inserted) {
      entries_.emplace_back(std::move(word), index);
    } else {
      entries_[it->second].second = index;
    }
  }
  // Built from the final pairs, as Keras builds index_word from the finished dict.
  for (size_t p = 0; p < entries_.size(); ++p) position_of_index_[entries_[p].second] = p;
}

std::optional<int64_t> WordIndex::find(std::string_view word) const {
  const auto it = position_.find(word);
  if (it == position_.end()) return std::nullopt;
  return entries_[it->second].second;
}

int64_t WordIndex::at(std::string_view word) const {
  const auto index = find(word);
  WEFT_CHECK(index.has_value(), "word_index: no word '{}'", word);
  return *index;
}

std::optional<std::string_view> WordIndex::word(int64_t index) const {
  const auto it = position_of_index_.find(index);
  if (it == position_of_index_.end()) return std::nullopt;
  return entries_[it->second].first;
}

Tokenizer& Tokenizer::num_words(int64_t n) {
  WEFT_CHECK(n > 0, "Tokenizer: num_words must be positive, got {}", n);
  num_words_ = n;
  return *this;
}

Tokenizer& Tokenizer::filters(std::string chars) {
  filters_ = std::move(chars);
  return *this;
}

Tokenizer& Tokenizer::lower(bool on) {
  lower_ = on;
  return *this;
}

Tokenizer& Tokenizer::split(std::string separator) {
  WEFT_CHECK(!separator.empty(), "Tokenizer: split must not be empty");
  split_ = std::move(separator);
  return *this;
}

Tokenizer& Tokenizer::oov_token(std::string token) {
  oov_token_ = std::move(token);
  return *this;
}

void Tokenizer::fit_on_texts(const std::vector<std::string>& texts) {
  for (const auto& text : texts) {
    ++document_count_;
    for (auto& word : text_to_word_sequence(text, filters_, lower_, split_)) {
      const auto [it, inserted] = count_position_.try_emplace(word, word_counts_.size());
      if (inserted) word_counts_.emplace_back(std::move(word), 0);
      ++word_counts_[it->second].second;
    }
  }
  std::vector<size_t> order(word_counts_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  // Stable, like Python's sort, so ties stay in order of first appearance.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return word_counts_[a].second > word_counts_[b].second;
  });
  std::vector<WordIndex::Entry> ranked;
  ranked.reserve(order.size() + 1);
  if (oov_token_) ranked.emplace_back(*oov_token_, 1);
  for (const size_t p : order) {
    ranked.emplace_back(word_counts_[p].first, static_cast<int64_t>(ranked.size()) + 1);
  }
  // A dict, as in Keras: an oov_token that is also a corpus word keeps the word's index.
  word_index_ = WordIndex(std::move(ranked));
  fitted_ = true;
}

std::optional<int64_t> Tokenizer::oov_index() const {
  WEFT_CHECK(fitted_, "Tokenizer: call fit_on_texts before converting texts or sequences");
  if (!oov_token_) return std::nullopt;
  const auto index = word_index_.find(*oov_token_);
  WEFT_CHECK(index.has_value(),
             "Tokenizer: oov_token '{}' is not in word_index; set it before fit_on_texts",
             *oov_token_);
  return index;
}

std::vector<std::vector<int64_t>> Tokenizer::texts_to_sequences(
    const std::vector<std::string>& texts) const {
  const auto oov = oov_index();
  std::vector<std::vector<int64_t>> sequences;
  sequences.reserve(texts.size());
  for (const auto& text : texts) {
    auto& sequence = sequences.emplace_back();
    for (const auto& word : text_to_word_sequence(text, filters_, lower_, split_)) {
      auto index = word_index_.find(word);
      if (!index || (num_words_ && *index >= *num_words_)) index = oov;
      if (index) sequence.push_back(*index);
    }
  }
  return sequences;
}

std::vector<std::string> Tokenizer::sequences_to_texts(
    const std::vector<std::vector<int64_t>>& sequences) const {
  const auto oov = oov_index();
  const auto oov_word = oov ? word_index_.word(*oov) : std::nullopt;
  std::vector<std::string> texts;
  texts.reserve(sequences.size());
  for (const auto& sequence : sequences) {
    auto& text = texts.emplace_back();
    size_t words = 0;
    for (const int64_t index : sequence) {
      auto word = word_index_.word(index);
      if (!word || (num_words_ && index >= *num_words_)) word = oov_word;
      if (!word) continue;
      if (words++ > 0) text += ' ';
      text += *word;
    }
  }
  return texts;
}

IntMatrix pad_sequences(const std::vector<std::vector<int64_t>>& sequences,
                        const PadOptions& options) {
  WEFT_CHECK(options.padding == "pre" || options.padding == "post",
             "pad_sequences: padding must be \"pre\" or \"post\", got \"{}\"", options.padding);
  WEFT_CHECK(options.truncating == "pre" || options.truncating == "post",
             "pad_sequences: truncating must be \"pre\" or \"post\", got \"{}\"",
             options.truncating);
  WEFT_CHECK(!options.maxlen || *options.maxlen > 0,
             "pad_sequences: maxlen must be positive, got {}", options.maxlen.value_or(0));
  size_t longest = 0;
  for (const auto& s : sequences) longest = std::max(longest, s.size());
  const auto maxlen = static_cast<size_t>(options.maxlen.value_or(static_cast<int64_t>(longest)));

  IntMatrix padded{static_cast<int64_t>(sequences.size()), static_cast<int64_t>(maxlen),
                   std::vector<int64_t>(sequences.size() * maxlen, options.value)};
  for (size_t r = 0; r < sequences.size(); ++r) {
    const auto& s = sequences[r];
    const size_t n = std::min(s.size(), maxlen);
    const auto from = options.truncating == "pre" ? s.end() - static_cast<ptrdiff_t>(n) : s.begin();
    const size_t to = r * maxlen + (options.padding == "pre" ? maxlen - n : 0);
    std::copy_n(from, n, padded.values.begin() + static_cast<ptrdiff_t>(to));
  }
  return padded;
}

}  // namespace weft
