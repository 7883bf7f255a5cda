#include "weft/models/datasets.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <system_error>
#include <unordered_set>
#include <utility>

#include "weft/ops/ops.h"
#include "weft/runtime/error.h"

namespace weft {
namespace fs = std::filesystem;
namespace {

struct Reviews {
  std::vector<std::string> texts;
  std::vector<int64_t> labels;
};

std::string read_text_file(const fs::path& path, std::string_view loader) {
  std::ifstream in(path, std::ios::binary);
  WEFT_CHECK(in.is_open(), "{}: cannot open '{}'", loader, path.string());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void check_folder(const fs::path& folder, std::string_view loader) {
  WEFT_CHECK(fs::is_directory(folder), "{}: no folder '{}'", loader, folder.string());
}

// The regular files in `folder` with this extension, sorted by name.
std::vector<fs::path> files_in(const fs::path& folder, std::string_view extension) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.is_regular_file() && entry.path().extension() == extension) {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

Reviews read_split(const fs::path& folder) {
  check_folder(folder, "load_imdb_folder");
  Reviews reviews;
  for (const auto& [name, label] : {std::pair{"pos", 1}, std::pair{"neg", 0}}) {
    const fs::path label_folder = folder / name;
    check_folder(label_folder, "load_imdb_folder");
    for (const auto& file : files_in(label_folder, ".txt")) {
      std::string text = read_text_file(file, "load_imdb_folder");
      const auto bad = invalid_utf8_at(text);
      WEFT_CHECK(!bad, "load_imdb_folder: '{}' is not valid UTF-8 (byte {})", file.string(),
                 bad.value_or(0));
      reviews.texts.push_back(std::move(text));
      reviews.labels.push_back(label);
    }
  }
  return reviews;
}

// One SpamAssassin record: its body and whether its group is spam.
std::pair<std::string, int64_t> read_email(const fs::path& path) {
  constexpr std::string_view kLoader = "load_spam_assassin";
  const std::string text = read_text_file(path, kLoader);
  const auto record = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  WEFT_CHECK(!record.is_discarded(), "{}: '{}' is not JSON", kLoader, path.string());
  const auto string_field = [&](const char* key) -> const std::string* {
    if (!record.is_object()) return nullptr;
    const auto it = record.find(key);
    return it != record.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
  };
  const std::string* message = string_field("text");
  const std::string* group = string_field("group");
  WEFT_CHECK(message != nullptr && group != nullptr,
             "{}: '{}' is not an e-mail record (a JSON object with string fields \"text\" and "
             "\"group\")",
             kLoader, path.string());
  // The body follows the first blank line; a message without one is all headers.
  size_t body = message->size();
  for (const std::string_view blank : {"\n\n", "\r\n\r\n"}) {
    const size_t at = message->find(blank);
    if (at != std::string::npos) body = std::min(body, at + blank.size());
  }
  return {message->substr(body), group->starts_with("spam") ? 1 : 0};
}

// numpy's legacy RandomState.shuffle of n items, bit for bit, calling swap(i, j) for each
// exchange: std::mt19937 seeded with an integer is numpy's init_genrand, and each swap partner
// comes from numpy's random_interval (mask, then reject). Counts below 2^32, where numpy draws
// 32-bit words.
template <typename Swap>
void numpy_shuffle(size_t n, std::mt19937& rng, Swap swap) {
  for (size_t i = n; i-- > 1;) {
    uint64_t mask = i;
    for (int shift = 1; shift <= 16; shift *= 2) mask |= mask >> shift;
    uint64_t j = 0;
    do {
      j = rng() & mask;
    } while (j > i);
    swap(i, j);
  }
}

void numpy_shuffle(Reviews& reviews, std::mt19937& rng) {
  numpy_shuffle(reviews.texts.size(), rng, [&](size_t i, size_t j) {
    std::swap(reviews.texts[i], reviews.texts[j]);
    std::swap(reviews.labels[i], reviews.labels[j]);
  });
}

// numpy.random.RandomState(seed).permutation(n), as scikit-learn draws it.
Tensor numpy_permutation(int64_t n, uint32_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 rng(seed);
  numpy_shuffle(order.size(), rng, [&](size_t i, size_t j) { std::swap(order[i], order[j]); });
  return from_vector(order, {n});
}

// x and y must hold the same number of samples, at least `minimum`.
void check_samples(std::string_view what, const Tensor& x, const Tensor& y, int64_t minimum) {
  WEFT_CHECK(x.defined() && y.defined() && x.dim() >= 1 && y.dim() >= 1,
             "{}: x and y must both be tensors with a sample axis", what);
  WEFT_CHECK(x.size(0) == y.size(0), "{}: x has {} samples but y has {}", what, x.size(0),
             y.size(0));
  WEFT_CHECK(x.size(0) >= minimum, "{}: needs at least {} samples, got {}", what, minimum,
             x.size(0));
  WEFT_CHECK(x.size(0) < (int64_t{1} << 32), "{}: {} samples are more than numpy's shuffle takes",
             what, x.size(0));
}

LabeledSequences encode(const Reviews& reviews, const WordIndex& ranks,
                        const ImdbOptions& options) {
  const auto in_vocabulary = [&](int64_t code) {
    return code >= options.skip_top && (!options.num_words || code < *options.num_words);
  };
  LabeledSequences encoded;
  for (size_t k = 0; k < reviews.texts.size(); ++k) {
    const auto words = text_to_word_sequence(reviews.texts[k]);
    // Keras filters by length before cutting rare words, so dropped words still count.
    const size_t length = words.size() + (options.start_char ? 1 : 0);
    if (options.maxlen && length >= static_cast<size_t>(*options.maxlen)) continue;
    auto& sequence = encoded.sequences.emplace_back();
    sequence.reserve(length);
    const auto push = [&](std::optional<int64_t> code) {
      if (code && in_vocabulary(*code)) {
        sequence.push_back(*code);
      } else if (options.oov_char) {
        sequence.push_back(*options.oov_char);
      }
    };
    if (options.start_char) push(options.start_char);
    for (const auto& word : words) {
      const auto rank = ranks.find(word);
      push(rank ? std::optional(*rank + options.index_from) : std::nullopt);
    }
    encoded.labels.push_back(reviews.labels[k]);
  }
  return encoded;
}

std::string_view trim(std::string_view s) {
  const size_t first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

std::vector<std::string_view> split_fields(std::string_view line, char delimiter) {
  std::vector<std::string_view> fields;
  for (size_t start = 0;;) {
    const size_t end = line.find(delimiter, start);
    fields.push_back(trim(line.substr(start, end - start)));
    if (end == std::string_view::npos) return fields;
    start = end + 1;
  }
}

void check_options(const ImdbOptions& options, std::string_view loader) {
  WEFT_CHECK(!options.num_words || *options.num_words > 0, "{}: num_words must be positive, got {}",
             loader, options.num_words.value_or(0));
  WEFT_CHECK(!options.maxlen || *options.maxlen > 0, "{}: maxlen must be positive, got {}", loader,
             options.maxlen.value_or(0));
  WEFT_CHECK(options.skip_top >= 0, "{}: skip_top must not be negative, got {}", loader,
             options.skip_top);
}

// Both splits encoded with the ranks of `word_index`.
ImdbDataset encode_splits(const Reviews& train, const Reviews& test, const WordIndex& word_index,
                          const ImdbOptions& options, std::string_view loader) {
  ImdbDataset data{encode(train, word_index, options), encode(test, word_index, options),
                   word_index};
  WEFT_CHECK(!options.maxlen || (!data.train.sequences.empty() && !data.test.sequences.empty()),
             "{}: after filtering for sequences shorter than maxlen={}, no sequence was kept; "
             "increase maxlen",
             loader, options.maxlen.value_or(0));
  return data;
}

}  // namespace

ImdbDataset load_imdb_folder(const fs::path& root, const ImdbOptions& options) {
  check_options(options, "load_imdb_folder");
  check_folder(root, "load_imdb_folder");
  Reviews train = read_split(root / "train");
  Reviews test = read_split(root / "test");

  Tokenizer tokenizer;
  tokenizer.fit_on_texts(train.texts);
  if (options.seed) {
    std::mt19937 rng(*options.seed);
    numpy_shuffle(train, rng);
    numpy_shuffle(test, rng);
  }
  return encode_splits(train, test, tokenizer.word_index(), options, "load_imdb_folder");
}

ImdbDataset load_spam_assassin(const fs::path& root, const ImdbOptions& options,
                               double test_fraction) {
  constexpr std::string_view kLoader = "load_spam_assassin";
  check_options(options, kLoader);
  WEFT_CHECK(test_fraction > 0 && test_fraction < 1, "{}: test_fraction must be in (0, 1), got {}",
             kLoader, test_fraction);
  check_folder(root, kLoader);
  std::vector<fs::path> groups;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (entry.is_directory()) groups.push_back(entry.path());
  }
  std::sort(groups.begin(), groups.end());
  Reviews all;
  for (const auto& group : groups) {
    for (const auto& file : files_in(group, ".json")) {
      auto [body, label] = read_email(file);
      all.texts.push_back(std::move(body));
      all.labels.push_back(label);
    }
  }
  WEFT_CHECK(!all.texts.empty(), "{}: no e-mail records (GROUP/*.json) in '{}'", kLoader,
             root.string());
  if (options.seed) {
    std::mt19937 rng(*options.seed);
    numpy_shuffle(all, rng);
  }
  const auto n = static_cast<double>(all.texts.size());
  const auto n_test = static_cast<size_t>(std::llround(n * test_fraction));
  const size_t n_train = all.texts.size() - n_test;
  WEFT_CHECK(n_test > 0 && n_train > 0,
             "{}: {} e-mails in '{}' are too few to split {:g}/{:g} into train and test", kLoader,
             all.texts.size(), root.string(), 1 - test_fraction, test_fraction);
  const auto take = [&](size_t first, size_t last) {
    return Reviews{{std::make_move_iterator(all.texts.begin() + first),
                    std::make_move_iterator(all.texts.begin() + last)},
                   {all.labels.begin() + first, all.labels.begin() + last}};
  };
  const Reviews train = take(0, n_train);
  const Reviews test = take(n_train, all.texts.size());
  Tokenizer tokenizer;
  tokenizer.fit_on_texts(train.texts);
  return encode_splits(train, test, tokenizer.word_index(), options, kLoader);
}

std::vector<double> CsvTable::column(std::string_view name) const {
  const auto it = std::find(columns.begin(), columns.end(), name);
  WEFT_CHECK(it != columns.end(), "read_csv: no column '{}' (columns: {})", name,
             fmt::join(columns, ", "));
  const auto c = static_cast<int64_t>(it - columns.begin());
  std::vector<double> result;
  result.reserve(static_cast<size_t>(values.rows));
  for (int64_t r = 0; r < values.rows; ++r) result.push_back(values(r, c));
  return result;
}

namespace {

// A number as std::from_chars reads it, plus a leading '+'; nullopt (out_of_range set when it
// is too large for a double) if the whole text is not one.
std::optional<double> parse_number(std::string_view text, bool& out_of_range) {
  if (text.size() > 1 && text[0] == '+' && text[1] != '-') text.remove_prefix(1);
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  out_of_range = error == std::errc::result_out_of_range;
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Reads an unsigned integer of 1 to max_digits digits at the front of `text`, then drops it.
std::optional<int> take_digits(std::string_view& text, size_t max_digits) {
  size_t digits = 0;
  while (digits < text.size() && digits < max_digits && text[digits] >= '0' && text[digits] <= '9')
    ++digits;
  if (digits == 0) return std::nullopt;
  int value = 0;
  std::from_chars(text.data(), text.data() + digits, value);
  text.remove_prefix(digits);
  return value;
}

bool take(std::string_view& text, std::string_view any_of) {
  if (text.empty() || any_of.find(text.front()) == std::string_view::npos) return false;
  text.remove_prefix(1);
  return true;
}

// "YYYY-MM-DD" (or with '/', months and days of one digit too), optionally followed by ' ' or
// 'T' and "HH:MM", "HH:MM:SS" or "HH:MM:SS.fff", and a 'Z': seconds since 1970-01-01 00:00 UTC.
std::optional<double> parse_date(std::string_view text) {
  namespace chrono = std::chrono;
  const auto year = take_digits(text, 4);
  const bool dash = !text.empty() && text.front() == '-';
  if (!year || !take(text, "-/")) return std::nullopt;
  const auto month = take_digits(text, 2);
  if (!month || !take(text, dash ? "-" : "/")) return std::nullopt;
  const auto day = take_digits(text, 2);
  if (!day) return std::nullopt;
  const chrono::year_month_day date{chrono::year(*year),
                                    chrono::month(static_cast<unsigned>(*month)),
                                    chrono::day(static_cast<unsigned>(*day))};
  if (!date.ok()) return std::nullopt;
  double seconds = static_cast<double>(chrono::sys_days(date).time_since_epoch().count()) * 86400;
  if (take(text, " T")) {
    const auto hours = take_digits(text, 2);
    if (!hours || *hours > 23 || !take(text, ":")) return std::nullopt;
    const auto minutes = take_digits(text, 2);
    if (!minutes || *minutes > 59) return std::nullopt;
    double second = 0;
    if (take(text, ":")) {
      const auto whole = take_digits(text, 2);
      if (!whole || *whole > 60) return std::nullopt;
      second = *whole;
      if (take(text, ".")) {
        const std::string_view digits = text.substr(0, text.find_first_not_of("0123456789"));
        if (digits.empty()) return std::nullopt;
        double fraction = 0;
        std::from_chars(digits.data(), digits.data() + digits.size(), fraction);
        second += fraction / std::pow(10.0, static_cast<double>(digits.size()));
        text.remove_prefix(digits.size());
      }
    }
    seconds += *hours * 3600.0 + *minutes * 60.0 + second;
  }
  take(text, "Z");
  if (!text.empty()) return std::nullopt;
  return seconds;
}

}  // namespace

CsvTable read_csv(const fs::path& path, const CsvOptions& options) {
  const std::string file = path.string();
  std::ifstream in(path, std::ios::binary);
  WEFT_CHECK(in.is_open(), "read_csv: cannot open '{}'", file);
  std::vector<std::string> names;  // every column of the file
  std::vector<size_t> read;        // the positions of the columns read, in the table's order
  std::vector<bool> is_date;       // by position
  bool chosen = false;             // whether `read` is settled
  CsvTable table;
  // The columns to read: those named, else every column of dates or (judged by the first data
  // line, if any) of numbers; the others are left out and listed in `skipped`.
  const auto choose = [&](const std::vector<std::string_view>* first_line) {
    if (!options.columns.empty()) {
      for (const auto& wanted : options.columns)
        read.push_back(
            static_cast<size_t>(std::find(names.begin(), names.end(), wanted) - names.begin()));
    } else {
      for (size_t c = 0; c < names.size(); ++c) {
        bool out_of_range = false;
        const std::string_view first = first_line != nullptr ? (*first_line)[c] : "";
        // An empty field is a missing number (an error below), not text.
        if (first.empty() || is_date[c] || parse_number(first, out_of_range) || out_of_range) {
          read.push_back(c);
        } else {
          table.skipped.push_back(names[c]);
        }
      }
    }
    for (const size_t c : read) table.columns.push_back(names[c]);
    table.values.cols = static_cast<int64_t>(read.size());
    chosen = true;
  };
  std::string line;
  for (int64_t line_number = 1; std::getline(in, line); ++line_number) {
    // Spreadsheets write a byte-order mark and CRLF line ends.
    if (line_number == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (trim(line).empty()) continue;
    const auto fields = split_fields(line, options.delimiter);
    if (names.empty()) {
      if (options.header) {
        std::unordered_set<std::string_view> seen;
        for (auto name : fields) {
          if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
            name = name.substr(1, name.size() - 2);
          }
          WEFT_CHECK(seen.insert(name).second, "read_csv: {}:{}: duplicate column name '{}'", file,
                     line_number, name);
          names.emplace_back(name);
        }
      } else {
        for (size_t c = 0; c < fields.size(); ++c) names.push_back(std::to_string(c));
      }
      is_date.assign(names.size(), false);
      for (const auto& wanted : options.columns)
        WEFT_CHECK(std::find(names.begin(), names.end(), wanted) != names.end(),
                   "read_csv: {}:{}: no column '{}' (columns: {})", file, line_number, wanted,
                   fmt::join(names, ", "));
      for (const auto& date : options.dates) {
        const auto it = std::find(names.begin(), names.end(), date);
        WEFT_CHECK(it != names.end(), "read_csv: {}:{}: no date column '{}' (columns: {})", file,
                   line_number, date, fmt::join(names, ", "));
        is_date[static_cast<size_t>(it - names.begin())] = true;
      }
      if (options.header) continue;
    }
    WEFT_CHECK(fields.size() == names.size(), "read_csv: {}:{}: expected {} fields, found {}", file,
               line_number, names.size(), fields.size());
    if (!chosen) choose(&fields);
    for (const size_t c : read) {
      if (is_date[c]) {
        const auto seconds = parse_date(fields[c]);
        WEFT_CHECK(seconds.has_value(),
                   "read_csv: {}:{}: field {} (column '{}') is not a date (YYYY-MM-DD, optionally "
                   "with a time HH:MM or HH:MM:SS): '{}'",
                   file, line_number, c + 1, names[c], fields[c]);
        table.values.values.push_back(*seconds);
        continue;
      }
      bool out_of_range = false;
      const auto value = parse_number(fields[c], out_of_range);
      WEFT_CHECK(!out_of_range, "read_csv: {}:{}: field {} (column '{}') is out of range: '{}'",
                 file, line_number, c + 1, names[c], fields[c]);
      WEFT_CHECK(
          value.has_value(), "read_csv: {}:{}: field {} (column '{}') is not a number: '{}'{}",
          file, line_number, c + 1, names[c], fields[c],
          parse_date(fields[c]) ? "; name the column in CsvOptions::dates to read dates" : "");
      table.values.values.push_back(*value);
    }
    ++table.values.rows;
  }
  WEFT_CHECK(!names.empty(), "read_csv: '{}' is empty", file);
  if (!chosen) choose(nullptr);
  return table;
}

Shuffled shuffle(const Tensor& x, const Tensor& y, uint32_t seed) {
  check_samples("shuffle", x, y, 1);
  const Tensor order = numpy_permutation(x.size(0), seed);
  return {gather(x, 0, order), gather(y, 0, order)};
}

TrainTestSplit train_test_split(const Tensor& x, const Tensor& y, double test_fraction,
                                std::optional<uint32_t> seed) {
  check_samples("train_test_split", x, y, 2);
  WEFT_CHECK(test_fraction > 0 && test_fraction < 1,
             "train_test_split: test_fraction must be in (0, 1), got {}", test_fraction);
  const int64_t n = x.size(0);
  // scikit-learn's sizes: the test set rounded up, the rest for training.
  const auto n_test = static_cast<int64_t>(std::ceil(test_fraction * static_cast<double>(n)));
  WEFT_CHECK(n_test < n,
             "train_test_split: {} samples leave none for training with test_fraction={}", n,
             test_fraction);
  if (!seed)
    return {slice(x, 0, 0, n - n_test), slice(x, 0, n - n_test, n), slice(y, 0, 0, n - n_test),
            slice(y, 0, n - n_test, n)};
  // scikit-learn's order: the permutation's first n_test samples test, the rest train.
  const Tensor order = numpy_permutation(n, *seed);
  const Tensor test = slice(order, 0, 0, n_test), train = slice(order, 0, n_test, n);
  return {gather(x, 0, train), gather(x, 0, test), gather(y, 0, train), gather(y, 0, test)};
}

Windows make_windows(std::span<const double> series, int64_t window) {
  const DoubleMatrix column{static_cast<int64_t>(series.size()), 1, {series.begin(), series.end()}};
  return make_windows(column, series, window);
}

Windows make_windows(const DoubleMatrix& features, std::span<const double> target, int64_t window) {
  const int64_t length = features.rows;
  WEFT_CHECK(static_cast<int64_t>(target.size()) == length,
             "make_windows: the target has {} values, the features {} rows", target.size(), length);
  WEFT_CHECK(
      window > 0 && window < length,
      "make_windows: window must be positive and shorter than the series ({} values), got {}",
      length, window);
  const int64_t n = length - window;
  const int64_t width = window * features.cols;
  Windows windows{DoubleMatrix{n, width, {}}, {}};
  windows.x.values.reserve(static_cast<size_t>(n * width));
  windows.y.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const auto first = features.values.begin() + i * features.cols;
    windows.x.values.insert(windows.x.values.end(), first, first + width);
    windows.y.push_back(target[static_cast<size_t>(i + window)]);
  }
  return windows;
}

}  // namespace weft
