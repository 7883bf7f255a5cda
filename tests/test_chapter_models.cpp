// The chapter's models build with Keras's parameter totals (keras-semantics.md: where the
// chapter's printed numbers differ, Keras's are right), at any sequence length, and take the
// registry's sample batches.
#include <gtest/gtest.h>

#include "weft/weft.h"

namespace weft {
namespace {

class ChapterModels : public ::testing::TestWithParam<ChapterModel> {};

TEST_P(ChapterModels, HaveKerasParameterTotals) {
  EXPECT_EQ(GetParam().build().count_params(), GetParam().keras_params);
  EXPECT_EQ(GetParam().with_timesteps(3).build().count_params(), GetParam().keras_params);
}

TEST_P(ChapterModels, PredictOnSampleBatches) {
  const ChapterModel& chapter = GetParam().with_timesteps(4);
  Sequential model = chapter.build();
  Generator generator(1);
  const Tensor x = sample_batch(chapter, 2, generator);
  EXPECT_EQ(model.predict(x).shape(), (Shape{2, 1}));
  EXPECT_EQ(sample_labels(chapter, 2, generator).shape(), (Shape{2}));
}

INSTANTIATE_TEST_SUITE_P(Chapter, ChapterModels, ::testing::ValuesIn(chapter_models()),
                         [](const auto& test) { return test.param.name; });

TEST(ChapterModelRegistry, UnknownNamesListTheKnownOnes) {
  try {
    chapter_model("transformer");
    FAIL() << "expected weft::Error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("sentiment_imdb"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace weft
