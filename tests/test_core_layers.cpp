// Dense, Embedding, Dropout and Sequential's build, naming and summary.
#include <gtest/gtest.h>

#include "weft/models/layer_gradcheck.h"
#include "weft/weft.h"

namespace weft {
namespace {

Tensor normal64(const Shape& shape, uint64_t seed) {
  Generator g(seed);
  return randn(shape, {.dtype = DType::f64}, g);
}

TEST(CoreLayers, DenseGradientsForEveryActivation) {
  for (const char* activation : {"linear", "relu", "sigmoid", "tanh", "softmax"}) {
    Dense dense = Dense(3).activation(activation).dtype(DType::f64);
    const GradcheckReport report = gradcheck_layer(dense, normal64({4, 5}, 1));
    EXPECT_TRUE(report.passed()) << activation << ": " << report.to_string();
    EXPECT_EQ(report.inputs.size(), 3u);  // x, kernel, bias
  }
}

TEST(CoreLayers, DenseOnSequencesActsOnTheLastAxis) {
  Dense dense = Dense(2).dtype(DType::f64);
  EXPECT_TRUE(gradcheck_layer(dense, normal64({2, 3, 4}, 2)).passed());
  CallContext context;
  EXPECT_EQ(dense.call(normal64({2, 3, 4}, 3), context).shape(), (Shape{2, 3, 2}));
}

TEST(CoreLayers, EmbeddingGradientScattersIntoRows) {
  Embedding embedding = Embedding(6, 3).dtype(DType::f64);
  const Tensor ids = from_vector<int64_t>({1, 5, 1, 0, 2, 2}, {2, 3});
  const GradcheckReport report = gradcheck_layer(embedding, ids);
  EXPECT_TRUE(report.passed()) << report.to_string();
}

TEST(CoreLayers, EmbeddingMaskZeroMarksPadding) {
  Embedding embedding = Embedding(10, 4).mask_zero(true);
  embedding.build_for({3}, default_generator());
  CallContext context;
  embedding.call(from_vector<int64_t>({3, 7, 0, 5, 0, 0}, {2, 3}), context);
  ASSERT_TRUE(context.mask.defined());
  EXPECT_EQ(context.mask.to_vector<int64_t>(), (std::vector<int64_t>{1, 1, 0, 1, 0, 0}));
}

TEST(CoreLayers, EmbeddingRejectsOutOfRangeAndFractionalIndices) {
  Embedding embedding(10, 4);
  embedding.set_name("embedding");
  embedding.build_for({2}, default_generator());
  CallContext context;
  try {
    embedding.call(from_vector<int64_t>({3, 10}, {1, 2}), context);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("index 10 is out of range for input_dim=10"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(embedding.call(tensor({1.5, 2}, {1, 2}), context), Error);
}

TEST(CoreLayers, DropoutScalesInTrainingAndIsIdentityOtherwise) {
  Dropout layer(0.25);
  const Tensor x = ones({200, 50});
  CallContext inference;
  EXPECT_TRUE(allclose(layer.call(x, inference), x));
  Generator generator(5);
  CallContext training{.training = true, .generator = &generator};
  const std::vector<float> y = layer.call(x, training).to_vector<float>();
  int zeros_seen = 0;
  for (float v : y) {
    if (v == 0)
      ++zeros_seen;
    else
      EXPECT_FLOAT_EQ(v, 1 / 0.75f);
  }
  EXPECT_NEAR(zeros_seen / 10000.0, 0.25, 0.02);
  EXPECT_TRUE(gradcheck_layer(layer, normal64({3, 4}, 6), {.training = true}).passed());
}

TEST(CoreLayers, ConstructorsRejectBadOptions) {
  EXPECT_THROW(Dense(0), Error);
  EXPECT_THROW(Dense(3).activation("swish"), Error);
  EXPECT_THROW(Embedding(0, 3), Error);
  EXPECT_THROW(Dropout(1.0), Error);
  EXPECT_THROW(Dropout(-0.1), Error);
}

TEST(SequentialModel, NamesLayersLikeKeras) {
  Sequential model{Dense(4).input_shape({3}), Dense(4), Dropout(0.1), Dense(1)};
  std::vector<std::string> names;
  for (const auto& layer : model.layers()) names.push_back(layer->name());
  EXPECT_EQ(names, (std::vector<std::string>{"dense", "dense_1", "dropout", "dense_2"}));
  EXPECT_THROW(model.add(Dense(2).name("dense_1")), Error);
}

TEST(SequentialModel, NamesTrainableWeightsByLayer) {
  Sequential model{Embedding(10, 4).input_length(3), LSTM(2), Dense(1)};
  model.build({3});
  model.layers()[0]->weights()[0]->trainable = false;
  EXPECT_EQ(model.trainable_weight_paths(),
            (std::vector<std::string>{"lstm/kernel", "lstm/recurrent_kernel", "lstm/bias",
                                      "dense/kernel", "dense/bias"}));
}

TEST(SequentialModel, SummaryMatchesKerasFormat) {
  Sequential model{Embedding(1000, 16).input_length(15), Dense(8).activation("relu"), Dense(1)};
  EXPECT_EQ(model.count_params(), 16000 + 136 + 9);
  const std::string expected =
      "Model: \"sequential\"\n"
      "_________________________________________________________________\n"
      " Layer (type)                Output Shape              Param #   \n"
      "=================================================================\n"
      " embedding (Embedding)       (None, 15, 16)            16000     \n"
      "                                                                 \n"
      " dense (Dense)               (None, 15, 8)             136       \n"
      "                                                                 \n"
      " dense_1 (Dense)             (None, 15, 1)             9         \n"
      "                                                                 \n"
      "=================================================================\n"
      "Total params: 16,145\n"
      "Trainable params: 16,145\n"
      "Non-trainable params: 0\n"
      "_________________________________________________________________\n";
  EXPECT_EQ(model.summary_string(), expected);
}

TEST(SequentialModel, SummaryWrapsLongNamesLikeKeras) {
  Sequential model{Embedding(100, 8).input_length(5),
                   Bidirectional(LSTM(4).return_sequences(true))};
  const std::string text = model.summary_string();
  EXPECT_NE(text.find(" bidirectional (Bidirectiona  (None, 5, 8)             416       \n"
                      " l)                                                              \n"),
            std::string::npos)
      << text;
}

TEST(SequentialModel, BuildsFromTheFirstBatchAndChecksLaterOnes) {
  Sequential model{Dense(2)};
  EXPECT_FALSE(model.built());
  EXPECT_THROW(model.count_params(), Error);
  EXPECT_EQ(model.call(ones({5, 3})).shape(), (Shape{5, 2}));
  EXPECT_EQ(model.count_params(), 8);
  try {
    model.call(ones({5, 4}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected shape=(None, 3), found shape=(5, 4)"),
              std::string::npos)
        << e.what();
  }
}

TEST(SequentialModel, EmbeddingRejects3DInputAtBuild) {
  try {
    Sequential model{Embedding(10, 4).input_shape({3, 2})};
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "Input 0 of layer \"embedding\" is incompatible with the layer: expected "
                 "ndim=2, found ndim=3. Full shape received: (None, 3, 2)");
  }
}

TEST(Initializers, FollowKerasDefinitions) {
  Generator g(1);
  const Tensor q = orthogonal({4, 12}, g);  // rows < cols: rows are orthonormal
  const std::vector<double> gram = matmul(q, transpose(q)).to_vector<double>();
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) EXPECT_NEAR(gram[i * 4 + j], i == j ? 1.0 : 0.0, 1e-9);
  const std::vector<double> w = glorot_uniform({30, 20}, g).to_vector<double>();
  const double limit = std::sqrt(6.0 / 50);
  for (double v : w) EXPECT_LE(std::abs(v), limit);
}

}  // namespace
}  // namespace weft
