// The chapter's models build with Keras's parameter totals (keras-semantics.md: where the
// chapter's printed numbers differ, Keras's are right).
#include <gtest/gtest.h>

#include <functional>

#include "weft/weft.h"

namespace weft {
namespace {

struct ChapterModel {
  const char* name;
  std::function<Sequential()> build;
  int64_t keras_total;
};

std::vector<ChapterModel> chapter_models() {
  return {
      {"text_preprocessing",
       [] {
         return Sequential{Embedding(1000, 16).input_length(15), LSTM(32),
                           Dense(1).activation("sigmoid")};
       },
       22305},
      {"stacked_lstm",
       [] {
         return Sequential{LSTM(64).input_shape({10, 1}).return_sequences(true),
                           LSTM(32).return_sequences(true), LSTM(16), Dense(1)};
       },
       32465},
      {"sentiment_imdb",
       [] {
         return Sequential{Embedding(10000, 64).input_length(200),
                           Bidirectional(LSTM(64).return_sequences(true)),
                           Dropout(0.3),
                           LSTM(32),
                           Dropout(0.3),
                           Dense(32).activation("relu"),
                           Dense(1).activation("sigmoid")};
       },
       727745},
      {"temperature_forecast",
       [] {
         return Sequential{LSTM(64).return_sequences(true).input_shape({30, 1}),
                           Dropout(0.2),
                           LSTM(32),
                           Dropout(0.2),
                           Dense(16).activation("relu"),
                           Dense(1)};
       },
       29857},
      {"compare_simple_rnn",
       [] {
         return Sequential{Embedding(5000, 32).input_length(100), SimpleRNN(64), Dense(1)};
       },
       166273},
      {"compare_lstm",
       [] {
         return Sequential{Embedding(5000, 32).input_length(100), LSTM(64), Dense(1)};
       },
       184897},
      {"compare_gru",
       [] {
         return Sequential{Embedding(5000, 32).input_length(100), GRU(64), Dense(1)};
       },
       178881},
      {"unidirectional",
       [] {
         return Sequential{Embedding(10000, 64).input_length(150), LSTM(64), Dropout(0.3),
                           Dense(1)};
       },
       673089},
      {"bidirectional",
       [] {
         return Sequential{Embedding(10000, 64).input_length(150), Bidirectional(LSTM(64)),
                           Dropout(0.3), Dense(1)};
       },
       706177},
  };
}

class ChapterModels : public ::testing::TestWithParam<ChapterModel> {};

TEST_P(ChapterModels, HaveKerasParameterTotals) {
  EXPECT_EQ(GetParam().build().count_params(), GetParam().keras_total);
}

INSTANTIATE_TEST_SUITE_P(Chapter, ChapterModels, ::testing::ValuesIn(chapter_models()),
                         [](const auto& test) { return std::string(test.param.name); });

}  // namespace
}  // namespace weft
