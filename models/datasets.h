// Dataset loaders for the chapter's programs: the raw IMDB corpus encoded as Keras's
// imdb.load_data encodes it, numeric CSV files, and sliding windows over a time series.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "weft/models/text.h"

namespace weft {

struct LabeledSequences {
  std::vector<std::vector<int64_t>> sequences;
  std::vector<int64_t> labels;
};

// The keyword arguments of Keras's imdb.load_data, with its defaults.
struct ImdbOptions {
  // Codes >= num_words become oov_char. Default: keep all.
  std::optional<int64_t> num_words = std::nullopt;
  // Codes < skip_top become oov_char too.
  int64_t skip_top = 0;
  // Drop reviews of maxlen codes or more, the start code included. Default: keep all.
  std::optional<int64_t> maxlen = std::nullopt;
  // Shuffle as Keras does; nullopt keeps the file order.
  std::optional<uint32_t> seed = 113;
  // The first code of every review; nullopt: none.
  std::optional<int64_t> start_char = 1;
  // The code of unknown and cut words; nullopt: drop them.
  std::optional<int64_t> oov_char = 2;
  // The word of rank r has code r + index_from.
  int64_t index_from = 3;
};

struct ImdbDataset {
  LabeledSequences train;  // labels: 1 for pos, 0 for neg
  LabeledSequences test;
  WordIndex word_index;  // word -> rank, 1 = most frequent in train, like imdb.get_word_index()
};

// Reads the aclImdb layout: root/{train,test}/{pos,neg}/*.txt, one review per file. Each split
// is read pos then neg, files sorted by name. Words are split as Tokenizer's defaults split
// them (lowercase, Keras's filters), so "<br />" becomes the word "br", as in Keras's imdb.npz.
// Then Keras's load_data steps, in its order: shuffle train, then test, with one numpy
// RandomState(seed) (the same permutation numpy gives); prepend start_char; drop reviews by
// maxlen; map codes outside [skip_top, num_words) to oov_char. Ranks come from the training
// texts (ties in reading order); test words never seen in training are out of vocabulary.
// Unlike Keras, num_words unset keeps every word (Keras cuts its single highest code).
ImdbDataset load_imdb_folder(const std::filesystem::path& root, const ImdbOptions& options = {});

struct CsvOptions {
  bool header = true;  // the first line names the columns; else they are named "0", "1", ...
  char delimiter = ',';
};

struct CsvTable {
  std::vector<std::string> columns;
  DoubleMatrix values;  // one row per data line, one column per field

  std::vector<double> column(std::string_view name) const;  // throws for an unknown name
};

// Reads a numeric CSV file. Fields may be padded with spaces; blank lines are skipped; a
// header name may be wrapped in double quotes. There is no other quoting, and every data field
// must be a number (as std::from_chars reads it, plus a leading '+'; "nan" and "inf" included).
CsvTable read_csv(const std::filesystem::path& path, const CsvOptions& options = {});

struct Windows {
  DoubleMatrix x;         // (N, window): row i is series[i .. i + window)
  std::vector<double> y;  // y[i] = series[i + window], the value after row i
};

// The chapter's create_sequences: every window of `window` consecutive values with the value
// that follows it, N = series.size() - window.
Windows make_windows(std::span<const double> series, int64_t window);

}  // namespace weft
