#include "weft/models/datasets.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <system_error>
#include <unordered_set>
#include <utility>

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

// numpy's legacy RandomState.shuffle, bit for bit: std::mt19937 seeded with an integer is
// numpy's init_genrand, and each swap partner comes from numpy's random_interval (mask, then
// reject). Review counts fit in 32 bits, where numpy draws 32-bit words.
void numpy_shuffle(Reviews& reviews, std::mt19937& rng) {
  for (size_t i = reviews.texts.size(); i-- > 1;) {
    uint64_t mask = i;
    for (int shift = 1; shift <= 16; shift *= 2) mask |= mask >> shift;
    uint64_t j = 0;
    do {
      j = rng() & mask;
    } while (j > i);
    std::swap(reviews.texts[i], reviews.texts[j]);
    std::swap(reviews.labels[i], reviews.labels[j]);
  }
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

CsvTable read_csv(const fs::path& path, const CsvOptions& options) {
  const std::string file = path.string();
  std::ifstream in(path, std::ios::binary);
  WEFT_CHECK(in.is_open(), "read_csv: cannot open '{}'", file);
  std::vector<std::string> names;  // every column of the file
  std::vector<size_t> read;        // the positions of the columns read, in the table's order
  CsvTable table;
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
      for (const auto& wanted : options.columns) {
        const auto it = std::find(names.begin(), names.end(), wanted);
        WEFT_CHECK(it != names.end(), "read_csv: '{}' has no column '{}' (columns: {})", file,
                   wanted, fmt::join(names, ", "));
        read.push_back(static_cast<size_t>(it - names.begin()));
      }
      if (options.columns.empty()) {
        for (size_t c = 0; c < names.size(); ++c) read.push_back(c);
      }
      for (const size_t c : read) table.columns.push_back(names[c]);
      table.values.cols = static_cast<int64_t>(read.size());
      if (options.header) continue;
    }
    WEFT_CHECK(fields.size() == names.size(), "read_csv: {}:{}: expected {} fields, found {}", file,
               line_number, names.size(), fields.size());
    for (const size_t c : read) {
      std::string_view text = fields[c];
      if (text.size() > 1 && text[0] == '+' && text[1] != '-') text.remove_prefix(1);
      double value = 0;
      const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
      WEFT_CHECK(error != std::errc::result_out_of_range,
                 "read_csv: {}:{}: field {} (column '{}') is out of range: '{}'", file, line_number,
                 c + 1, names[c], fields[c]);
      WEFT_CHECK(error == std::errc() && end == text.data() + text.size(),
                 "read_csv: {}:{}: field {} (column '{}') is not a number: '{}'", file, line_number,
                 c + 1, names[c], fields[c]);
      table.values.values.push_back(value);
    }
    ++table.values.rows;
  }
  WEFT_CHECK(!names.empty(), "read_csv: '{}' is empty", file);
  return table;
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
