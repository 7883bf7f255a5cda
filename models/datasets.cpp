#include "weft/models/datasets.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <iterator>
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

std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  WEFT_CHECK(in.is_open(), "load_imdb_folder: cannot open '{}'", path.string());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void check_folder(const fs::path& folder) {
  WEFT_CHECK(fs::is_directory(folder), "load_imdb_folder: no folder '{}'", folder.string());
}

Reviews read_split(const fs::path& folder) {
  check_folder(folder);
  Reviews reviews;
  for (const auto& [name, label] : {std::pair{"pos", 1}, std::pair{"neg", 0}}) {
    const fs::path label_folder = folder / name;
    check_folder(label_folder);
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(label_folder)) {
      if (entry.is_regular_file() && entry.path().extension() == ".txt") {
        files.push_back(entry.path());
      }
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      reviews.texts.push_back(read_text_file(file));
      reviews.labels.push_back(label);
    }
  }
  return reviews;
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

}  // namespace

ImdbDataset load_imdb_folder(const fs::path& root, const ImdbOptions& options) {
  WEFT_CHECK(!options.num_words || *options.num_words > 0,
        "load_imdb_folder: num_words must be positive, got {}", options.num_words.value_or(0));
  WEFT_CHECK(!options.maxlen || *options.maxlen > 0, "load_imdb_folder: maxlen must be positive, got {}",
        options.maxlen.value_or(0));
  WEFT_CHECK(options.skip_top >= 0, "load_imdb_folder: skip_top must not be negative, got {}",
        options.skip_top);
  check_folder(root);
  Reviews train = read_split(root / "train");
  Reviews test = read_split(root / "test");

  Tokenizer tokenizer;
  tokenizer.fit_on_texts(train.texts);
  if (options.seed) {
    std::mt19937 rng(*options.seed);
    numpy_shuffle(train, rng);
    numpy_shuffle(test, rng);
  }
  ImdbDataset data{encode(train, tokenizer.word_index(), options),
                   encode(test, tokenizer.word_index(), options), tokenizer.word_index()};
  WEFT_CHECK(!options.maxlen || (!data.train.sequences.empty() && !data.test.sequences.empty()),
        "load_imdb_folder: after filtering for sequences shorter than maxlen={}, no sequence was "
        "kept; increase maxlen",
        options.maxlen.value_or(0));
  return data;
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
  CsvTable table;
  bool have_columns = false;
  std::string line;
  for (int64_t line_number = 1; std::getline(in, line); ++line_number) {
    // Spreadsheets write a byte-order mark and CRLF line ends.
    if (line_number == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (trim(line).empty()) continue;
    const auto fields = split_fields(line, options.delimiter);
    if (!have_columns) {
      have_columns = true;
      table.values.cols = static_cast<int64_t>(fields.size());
      if (options.header) {
        std::unordered_set<std::string_view> seen;
        for (auto name : fields) {
          if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
            name = name.substr(1, name.size() - 2);
          }
          WEFT_CHECK(seen.insert(name).second, "read_csv: {}:{}: duplicate column name '{}'", file,
                line_number, name);
          table.columns.emplace_back(name);
        }
        continue;
      }
      for (size_t c = 0; c < fields.size(); ++c) table.columns.push_back(std::to_string(c));
    }
    WEFT_CHECK(static_cast<int64_t>(fields.size()) == table.values.cols,
          "read_csv: {}:{}: expected {} fields, found {}", file, line_number, table.values.cols,
          fields.size());
    for (size_t c = 0; c < fields.size(); ++c) {
      std::string_view text = fields[c];
      if (text.size() > 1 && text[0] == '+' && text[1] != '-') text.remove_prefix(1);
      double value = 0;
      const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
      WEFT_CHECK(error != std::errc::result_out_of_range,
            "read_csv: {}:{}: field {} (column '{}') is out of range: '{}'", file, line_number,
            c + 1, table.columns[c], fields[c]);
      WEFT_CHECK(error == std::errc() && end == text.data() + text.size(),
            "read_csv: {}:{}: field {} (column '{}') is not a number: '{}'", file, line_number,
            c + 1, table.columns[c], fields[c]);
      table.values.values.push_back(value);
    }
    ++table.values.rows;
  }
  WEFT_CHECK(have_columns, "read_csv: '{}' is empty", file);
  return table;
}

Windows make_windows(std::span<const double> series, int64_t window) {
  const auto length = static_cast<int64_t>(series.size());
  WEFT_CHECK(window > 0 && window < length,
        "make_windows: window must be positive and shorter than the series ({} values), got {}",
        length, window);
  const int64_t n = length - window;
  Windows windows{DoubleMatrix{n, window, {}}, {}};
  windows.x.values.reserve(static_cast<size_t>(n * window));
  windows.y.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const auto first = series.begin() + i;
    windows.x.values.insert(windows.x.values.end(), first, first + window);
    windows.y.push_back(series[static_cast<size_t>(i + window)]);
  }
  return windows;
}

}  // namespace weft
