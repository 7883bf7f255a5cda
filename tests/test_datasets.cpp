// The dataset loaders on small fixture trees and files made in a temporary folder: IMDB's
// encoding and its Keras shuffle (against numpy's permutations in
// tests/data/preprocessing_reference.txt), read_csv, make_windows, and their errors.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "reference_vectors.h"
#include "test_support.h"
#include "weft/models/datasets.h"
#include "weft/runtime/error.h"

namespace {

using weft::testing_support::expect_error;
using weft::testing_support::TempDirTest;
namespace fs = std::filesystem;
using Sequences = std::vector<std::vector<int64_t>>;

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
  const auto cases = weft::reference::load_reference_vectors(std::string(WEFT_TEST_DATA_DIR) +
                                                             "/preprocessing_reference.txt");
  int checked = 0;
  for (const auto& c : cases) {
    if (c.string_attr("kind") != "\"shuffle\"") continue;
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
    ++checked;
  }
  EXPECT_EQ(checked, 3);
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

TEST_F(ImdbFolder, RejectsBadOptions) {
  write_small_corpus();
  expect_error([&] { load({.num_words = 0}); }, {"num_words", "0"});
  expect_error([&] { load({.maxlen = -1}); }, {"maxlen", "-1"});
  expect_error([&] { load({.skip_top = -1}); }, {"skip_top", "-1"});
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

  const auto trailing = write("trailing.csv", "a,b\n1,2x\n").string();
  expect_error([&] { weft::read_csv(trailing); }, {trailing + ":2:", "'2x'"});

  const auto huge = write("huge.csv", "a\n1e999\n").string();
  expect_error([&] { weft::read_csv(huge); }, {huge + ":2:", "out of range", "1e999"});

  const auto twice = write("twice.csv", "a,b,a\n").string();
  expect_error([&] { weft::read_csv(twice); }, {twice + ":1:", "duplicate", "'a'"});
}

TEST_F(Csv, NamesMissingOrEmptyFile) {
  const auto missing = (dir_ / "missing.csv").string();
  expect_error([&] { weft::read_csv(missing); }, {missing});
  const auto empty = write("empty.csv", "\n\n").string();
  expect_error([&] { weft::read_csv(empty); }, {empty, "empty"});
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

TEST(Window, RejectsBadWindow) {
  const std::vector<double> series = {0, 1, 2};
  for (const int64_t window : {0, -1, 3, 4}) {
    expect_error([&] { weft::make_windows(series, window); },
                 {"window", std::to_string(window), "3 values"});
  }
  expect_error([] { weft::make_windows({}, 1); }, {"window", "0 values"});
}

}  // namespace
