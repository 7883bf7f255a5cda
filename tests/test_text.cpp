// Tokenizer, text_to_word_sequence and pad_sequences: the chapter's examples, the cases of
// tests/data/preprocessing_reference.txt (made from keras_preprocessing by
// tests/reference/gen_preprocessing_vectors.py), and the errors for bad input.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "reference_vectors.h"
#include "test_support.h"
#include "weft/models/text.h"
#include "weft/runtime/error.h"

namespace {

using weft::IntMatrix;
using weft::PadOptions;
using weft::Tokenizer;
using weft::reference::ReferenceCase;
using weft::testing_support::expect_error;
using Sequences = std::vector<std::vector<int64_t>>;

const std::vector<ReferenceCase>& reference_cases() {
  static const auto cases = weft::reference::load_reference_vectors(
      std::string(WEFT_TEST_DATA_DIR) + "/preprocessing_reference.txt");
  return cases;
}

std::vector<const ReferenceCase*> cases_of_kind(const std::string& kind) {
  std::vector<const ReferenceCase*> found;
  for (const auto& c : reference_cases()) {
    if (c.string_attr("kind") == "\"" + kind + "\"") found.push_back(&c);
  }
  return found;
}

// The generator's string encoding: double quotes around the text, %XX for some bytes.
std::string decode(const std::string& quoted) {
  EXPECT_TRUE(quoted.size() >= 2 && quoted.front() == '"' && quoted.back() == '"') << quoted;
  std::string text;
  for (size_t i = 1; i + 1 < quoted.size(); ++i) {
    if (quoted[i] == '%') {
      text += static_cast<char>(std::stoi(quoted.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      text += quoted[i];
    }
  }
  return text;
}

std::string text_attr(const ReferenceCase& c, const std::string& key) {
  return decode(c.string_attr(key));
}

std::vector<std::string> text_list(const ReferenceCase& c, const std::string& key) {
  std::vector<std::string> texts;
  for (int64_t i = 0; i < c.int_attr(key + "_count"); ++i) {
    texts.push_back(text_attr(c, key + std::to_string(i)));
  }
  return texts;
}

std::vector<int64_t> int_array(const ReferenceCase& c, const std::string& name) {
  const auto& values = c.array(name).values;
  return std::vector<int64_t>(values.begin(), values.end());
}

Sequences rows(const IntMatrix& m) {
  Sequences out;
  for (int64_t r = 0; r < m.rows; ++r) out.emplace_back(m.row(r).begin(), m.row(r).end());
  return out;
}

const std::vector<std::string> kChapterTexts = {
    "This movie is amazing and I loved every moment of it",
    "Terrible film, waste of time and money",
    "Great acting and wonderful storyline, highly recommended",
    "Boring and predictable, would not watch again",
    "The best movie I have seen this year, brilliant performances",
    "Awful movie with bad acting and poor direction",
};

TEST(Tokenizer, ChapterExample) {
  Tokenizer tokenizer = Tokenizer().num_words(1000).oov_token("<OOV>");
  tokenizer.fit_on_texts(kChapterTexts);

  // keras_preprocessing gives 41 entries (40 words and <OOV>); the chapter printed 37.
  const auto& word_index = tokenizer.word_index();
  EXPECT_EQ(word_index.size(), 41u);
  const std::vector<std::pair<std::string, int64_t>> first(word_index.begin(),
                                                           word_index.begin() + 5);
  EXPECT_EQ(first, (std::vector<std::pair<std::string, int64_t>>{
                       {"<OOV>", 1}, {"and", 2}, {"movie", 3}, {"this", 4}, {"i", 5}}));

  const auto sequences = tokenizer.texts_to_sequences(kChapterTexts);
  EXPECT_EQ(sequences[0], (std::vector<int64_t>{4, 3, 8, 9, 2, 5, 10, 11, 12, 6, 13}));

  const IntMatrix padded =
      weft::pad_sequences(sequences, {.maxlen = 15, .padding = "post", .truncating = "post"});
  EXPECT_EQ(padded.rows, 6);
  EXPECT_EQ(padded.cols, 15);
  EXPECT_EQ(rows(padded)[0],
            (std::vector<int64_t>{4, 3, 8, 9, 2, 5, 10, 11, 12, 6, 13, 0, 0, 0, 0}));

  EXPECT_EQ(
      tokenizer.texts_to_sequences({"This is a great and amazing movie", "Bad and boring film"}),
      (Sequences{{4, 8, 1, 19, 2, 9, 3}, {39, 2, 24, 15}}));
}

TEST(Tokenizer, MatchesKerasPreprocessing) {
  const auto cases = cases_of_kind("tokenizer");
  ASSERT_GE(cases.size(), 15u);
  for (const ReferenceCase* c : cases) {
    SCOPED_TRACE(c->name);
    Tokenizer tokenizer;
    if (c->has_attr("num_words")) tokenizer.num_words(c->int_attr("num_words"));
    if (c->has_attr("oov_token")) tokenizer.oov_token(text_attr(*c, "oov_token"));
    tokenizer.lower(c->flag("lower"))
        .filters(text_attr(*c, "filters"))
        .split(text_attr(*c, "split"));
    for (int64_t i = 0; i < c->int_attr("fit_count"); ++i) {
      tokenizer.fit_on_texts(text_list(*c, "fit" + std::to_string(i) + "_text"));
    }

    const auto words = text_list(*c, "word_index_word");
    const auto indices = int_array(*c, "word_index");
    ASSERT_EQ(tokenizer.word_index().size(), words.size());
    for (size_t i = 0; i < words.size(); ++i) {
      EXPECT_EQ(tokenizer.word_index()[i], std::pair(words[i], indices[i])) << "entry " << i;
      EXPECT_EQ(tokenizer.word_index().find(words[i]), indices[i]);
      EXPECT_EQ(tokenizer.index_word(indices[i]), words[i]);
    }

    const auto counted = text_list(*c, "word_counts_word");
    const auto counts = int_array(*c, "word_counts");
    ASSERT_EQ(tokenizer.word_counts().size(), counted.size());
    for (size_t i = 0; i < counted.size(); ++i) {
      EXPECT_EQ(tokenizer.word_counts()[i], std::pair(counted[i], counts[i])) << "count " << i;
    }
    EXPECT_EQ(tokenizer.document_count(), c->int_attr("document_count"));

    const auto queries = text_list(*c, "query");
    const auto sequences = tokenizer.texts_to_sequences(queries);
    ASSERT_EQ(sequences.size(), queries.size());
    for (size_t i = 0; i < queries.size(); ++i) {
      EXPECT_EQ(sequences[i], int_array(*c, "query" + std::to_string(i) + "_sequence"))
          << "query " << i << ": " << queries[i];
    }

    Sequences to_decode;
    std::vector<std::string> decoded;
    for (int64_t i = 0; i < c->int_attr("decode_count"); ++i) {
      to_decode.push_back(int_array(*c, "decode" + std::to_string(i) + "_sequence"));
      decoded.push_back(text_attr(*c, "decode" + std::to_string(i) + "_text"));
    }
    EXPECT_EQ(tokenizer.sequences_to_texts(to_decode), decoded);
  }
}

TEST(Tokenizer, OptionsReadBack) {
  const Tokenizer defaults;
  EXPECT_EQ(defaults.num_words(), std::nullopt);
  EXPECT_EQ(defaults.filters(), weft::kDefaultFilters);
  EXPECT_TRUE(defaults.lower());
  EXPECT_EQ(defaults.split(), " ");
  EXPECT_EQ(defaults.oov_token(), std::nullopt);

  Tokenizer set = Tokenizer().num_words(7).filters("!").lower(false).split("|").oov_token("?");
  EXPECT_EQ(set.num_words(), 7);
  EXPECT_EQ(set.filters(), "!");
  EXPECT_FALSE(set.lower());
  EXPECT_EQ(set.split(), "|");
  EXPECT_EQ(set.oov_token(), "?");
}

TEST(Tokenizer, EmptyTextsGiveEmptySequencesAndAllPadding) {
  Tokenizer tokenizer;
  tokenizer.fit_on_texts({"one two", ""});
  const auto sequences = tokenizer.texts_to_sequences({"", "...", "two"});
  EXPECT_EQ(sequences, (Sequences{{}, {}, {2}}));
  EXPECT_EQ(rows(weft::pad_sequences(sequences, {.maxlen = 3})),
            (Sequences{{0, 0, 0}, {0, 0, 0}, {0, 0, 2}}));
}

// Python's str.lower, table-driven; tests/data/preprocessing_reference.txt holds whole
// Tokenizer runs on such text from keras_preprocessing itself.
TEST(Tokenizer, LowercasesAsPython) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"ÉCOLE Café NAÏVE Ångström ŒUVRE", "école café naïve ångström œuvre"},
      // A capital sigma ending a word lowers to the final sigma; elsewhere to σ.
      {"ΟΔΟΣ ΣΑΣ Σ ΣΟΦΟΣ.", "οδος σας σ σοφος."},
      {"МОСКВА Привет ЁЛКА ЇЖАК", "москва привет ёлка їжак"},
      // The capital sharp s lowers to ß; "SS" stays two letters.
      {"STRASSE ẞ GRÜẞE", "strasse ß grüße"},
      // İ lowers to i + U+0307 (one character to two); ASCII I to i, not the dotless ı.
      {"İSTANBUL IĞDIR ıI", "i̇stanbul iğdir ıi"},
      {"ǄUNGLA ǅ Ω K", "ǆungla ǆ ω k"},
      {"already lower 123 ß", "already lower 123 ß"},
  };
  for (const auto& [text, lowered] : cases) {
    EXPECT_EQ(weft::python_lower(text), lowered) << text;
  }
  // Filters see the lowered text: the combining dot of a lowered İ can be filtered on its own.
  EXPECT_EQ(weft::text_to_word_sequence("İİ É", "\u0307É"),
            (std::vector<std::string>{"i", "i", "é"}));
  EXPECT_EQ(weft::text_to_word_sequence("ÉCOLE Σ", weft::kDefaultFilters, false),
            (std::vector<std::string>{"ÉCOLE", "Σ"}));
}

// Python's strict UTF-8 decoder would refuse these bytes, so there is no str to tokenize; weft
// throws, naming the first bad byte, for the text, the filters and the split alike.
TEST(Tokenizer, RejectsInvalidUtf8) {
  const std::vector<std::pair<std::string, size_t>> cases = {
      {"\xC3"
       "A,B",
       0},                          // a lead byte without its continuation
      {"ab\xFF", 2},                // never valid
      {"caf\xC3\xA9 \xE2\x82", 6},  // cut short at the end
      {"\xC0\xAF", 0},              // an overlong '/'
      {"x\xED\xA0\x80", 1},         // a surrogate
      {"\xF4\x90\x80\x80", 0},      // past U+10FFFF
      {"\x80", 0},                  // a lone continuation byte
  };
  for (const auto& [text, at] : cases) {
    EXPECT_EQ(weft::invalid_utf8_at(text), at);
    for (const bool lower : {true, false}) {
      expect_error([&] { weft::text_to_word_sequence(text, weft::kDefaultFilters, lower); },
                   {"not valid UTF-8", "byte " + std::to_string(at)});
    }
    expect_error([&] { weft::text_to_word_sequence("a", text); }, {"filters", "not valid UTF-8"});
    expect_error([&] { weft::text_to_word_sequence("a", "", true, text); },
                 {"split", "not valid UTF-8"});
    expect_error([&] { Tokenizer().fit_on_texts({"fine", text}); }, {"not valid UTF-8"});
  }
  EXPECT_EQ(weft::invalid_utf8_at("plain ascii"), std::nullopt);
  EXPECT_EQ(weft::invalid_utf8_at("ÉCOLE 😀 ẞ"), std::nullopt);
  // A multi-byte filter removes only that character, not others sharing its lead byte.
  EXPECT_EQ(weft::text_to_word_sequence("caf\xC3\xA9 \xC3\xA8t\xC3\xA9", "\xC3\xA9"),
            (std::vector<std::string>{"caf", "\xC3\xA8t"}));
}

TEST(Tokenizer, WordIndexHasDictSemantics) {
  const weft::WordIndex index({{"a", 1}, {"b", 2}, {"a", 3}});
  EXPECT_EQ(index.size(), 2u);
  EXPECT_EQ(index[0], std::pair(std::string("a"), int64_t{3}));
  EXPECT_EQ(index[1], std::pair(std::string("b"), int64_t{2}));
  EXPECT_EQ(index.word(1), std::nullopt);
  EXPECT_EQ(index.word(3), "a");
  EXPECT_EQ(index.at("b"), 2);
  EXPECT_EQ(index.find("c"), std::nullopt);
  expect_error([&] { index.at("zebra"); }, {"zebra"});
}

TEST(Tokenizer, RejectsBadOptions) {
  expect_error([] { Tokenizer().num_words(0); }, {"num_words", "0"});
  expect_error([] { Tokenizer().num_words(-3); }, {"num_words", "-3"});
  expect_error([] { Tokenizer().split(""); }, {"split"});
  expect_error([] { weft::text_to_word_sequence("a b", weft::kDefaultFilters, true, ""); },
               {"split"});
}

TEST(Tokenizer, RejectsUseBeforeFitting) {
  const Tokenizer tokenizer;
  expect_error([&] { tokenizer.texts_to_sequences({"a"}); }, {"fit_on_texts"});
  expect_error([&] { tokenizer.sequences_to_texts({{1}}); }, {"fit_on_texts"});

  Tokenizer late_oov;
  late_oov.fit_on_texts({"a b"});
  late_oov.oov_token("<OOV>");
  expect_error([&] { late_oov.texts_to_sequences({"a c"}); }, {"oov_token", "<OOV>"});
}

TEST(PadSequences, ChapterExamples) {
  const Sequences sequences = {{1, 2, 3}, {4, 5, 6, 7, 8}, {9, 10}};
  EXPECT_EQ(rows(weft::pad_sequences(sequences, {.maxlen = 4})),
            (Sequences{{0, 1, 2, 3}, {5, 6, 7, 8}, {0, 0, 9, 10}}));
  EXPECT_EQ(rows(weft::pad_sequences(sequences, {.maxlen = 5, .padding = "post"})),
            (Sequences{{1, 2, 3, 0, 0}, {4, 5, 6, 7, 8}, {9, 10, 0, 0, 0}}));
  const IntMatrix longest = weft::pad_sequences(sequences);
  EXPECT_EQ(longest.rows, 3);
  EXPECT_EQ(longest.cols, 5);
  EXPECT_EQ(longest.values, (std::vector<int64_t>{0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 9, 10}));
  EXPECT_EQ(longest(1, 4), 8);
}

TEST(PadSequences, MatchesKerasPreprocessing) {
  const auto cases = cases_of_kind("pad");
  ASSERT_GE(cases.size(), 40u);
  for (const ReferenceCase* c : cases) {
    SCOPED_TRACE(c->name);
    Sequences input;
    for (int64_t i = 0; i < c->int_attr("input_count"); ++i) {
      input.push_back(int_array(*c, "input" + std::to_string(i)));
    }
    PadOptions options{.padding = text_attr(*c, "padding"),
                       .truncating = text_attr(*c, "truncating"),
                       .value = c->int_attr("value")};
    if (c->has_attr("maxlen")) options.maxlen = c->int_attr("maxlen");
    const IntMatrix padded = weft::pad_sequences(input, options);
    const auto& expected = c->array("output");
    EXPECT_EQ(padded.rows, expected.dim(0));
    EXPECT_EQ(padded.cols, expected.dim(1));
    EXPECT_EQ(padded.values, int_array(*c, "output"));
  }
}

TEST(PadSequences, NoSequencesWithoutMaxlenIsEmpty) {
  // Keras raises here (max of an empty list); weft returns shape (0, 0).
  const IntMatrix padded = weft::pad_sequences({});
  EXPECT_EQ(padded.rows, 0);
  EXPECT_EQ(padded.cols, 0);
  EXPECT_TRUE(padded.values.empty());
}

TEST(PadSequences, RejectsBadOptions) {
  const Sequences sequences = {{1, 2}};
  expect_error([&] { weft::pad_sequences(sequences, {.padding = "middle"}); },
               {"padding", "middle"});
  expect_error([&] { weft::pad_sequences(sequences, {.truncating = "both"}); },
               {"truncating", "both"});
  expect_error([&] { weft::pad_sequences(sequences, {.maxlen = 0}); }, {"maxlen", "0"});
  expect_error([&] { weft::pad_sequences(sequences, {.maxlen = -2}); }, {"maxlen", "-2"});
  // Checked even when nothing would need them (Keras checks lazily).
  expect_error([] { weft::pad_sequences({}, {.padding = "middle"}); }, {"padding", "middle"});
}

}  // namespace
