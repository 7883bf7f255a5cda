#include "weft/models/chapter_models.h"

#include <fmt/ranges.h>

#include "weft/models/core_layers.h"
#include "weft/models/recurrent.h"
#include "weft/ops/ops.h"

namespace weft {

namespace {

// The IMDB classifiers of compare_rnns: Embedding(5000, 32) -> one recurrent layer -> Dense.
template <typename Rnn>
ChapterModel compare_model(std::string name, const std::string& layer, int64_t keras_params) {
  return {
      .name = std::move(name),
      .description = fmt::format("compare_rnns: Embedding(5000, 32) -> {}(64) -> Dense(1)", layer),
      .build_for =
          [](int64_t timesteps, DType dtype) {
            return Sequential{Embedding(5000, 32).dtype(dtype).input_length(timesteps),
                              Rnn(64).dtype(dtype), Dense(1).dtype(dtype).activation("sigmoid")};
          },
      .sample_shape = {100},
      .input_dtype = DType::i64,
      .vocabulary = 5000,
      .loss = "binary_crossentropy",
      .keras_params = keras_params};
}

std::vector<ChapterModel> make_chapter_models() {
  return {
      {.name = "text_preprocessing",
       .description = "text_preprocessing: Embedding(1000, 16) -> LSTM(32) -> Dense(1, sigmoid)",
       .build_for =
           [](int64_t timesteps, DType dtype) {
             return Sequential{Embedding(1000, 16).dtype(dtype).input_length(timesteps),
                               LSTM(32).dtype(dtype), Dense(1).dtype(dtype).activation("sigmoid")};
           },
       .sample_shape = {15},
       .input_dtype = DType::i64,
       .vocabulary = 1000,
       .loss = "binary_crossentropy",
       .keras_params = 22305},
      {.name = "stacked_lstm",
       .description = "stacked_lstm: LSTM(64) -> LSTM(32) -> LSTM(16) -> Dense(1)",
       .build_for =
           [](int64_t timesteps, DType dtype) {
             return Sequential{
                 LSTM(64).dtype(dtype).input_shape({timesteps, 1}).return_sequences(true),
                 LSTM(32).dtype(dtype).return_sequences(true), LSTM(16).dtype(dtype),
                 Dense(1).dtype(dtype)};
           },
       .sample_shape = {10, 1},
       .input_dtype = DType::f32,
       .vocabulary = 0,
       .loss = "mse",
       .keras_params = 32465},
      {.name = "sentiment_imdb",
       .description = "sentiment_imdb: Embedding(10000, 64) -> Bidirectional(LSTM(64)) -> LSTM(32) "
                      "-> Dense(32) -> Dense(1)",
       .build_for =
           [](int64_t timesteps, DType dtype) {
             return Sequential{Embedding(10000, 64).dtype(dtype).input_length(timesteps),
                               Bidirectional(LSTM(64).dtype(dtype).return_sequences(true)),
                               Dropout(0.3).dtype(dtype),
                               LSTM(32).dtype(dtype),
                               Dropout(0.3).dtype(dtype),
                               Dense(32).dtype(dtype).activation("relu"),
                               Dense(1).dtype(dtype).activation("sigmoid")};
           },
       .sample_shape = {200},
       .input_dtype = DType::i64,
       .vocabulary = 10000,
       .loss = "binary_crossentropy",
       .keras_params = 727745},
      {.name = "temperature_forecast",
       .description = "temperature_forecast: LSTM(64) -> LSTM(32) -> Dense(16) -> Dense(1)",
       .build_for =
           [](int64_t timesteps, DType dtype) {
             return Sequential{
                 LSTM(64).dtype(dtype).return_sequences(true).input_shape({timesteps, 1}),
                 Dropout(0.2).dtype(dtype),
                 LSTM(32).dtype(dtype),
                 Dropout(0.2).dtype(dtype),
                 Dense(16).dtype(dtype).activation("relu"),
                 Dense(1).dtype(dtype)};
           },
       .sample_shape = {30, 1},
       .input_dtype = DType::f32,
       .vocabulary = 0,
       .loss = "mse",
       .keras_params = 29857},
      compare_model<SimpleRNN>("compare_simple_rnn", "SimpleRNN", 166273),
      compare_model<LSTM>("compare_lstm", "LSTM", 184897),
      compare_model<GRU>("compare_gru", "GRU", 178881),
      {.name = "unidirectional_imdb",
       .description = "bidirectional_imdb's baseline: Embedding(10000, 64) -> LSTM(64) -> Dense(1)",
       .build_for =
           [](int64_t timesteps, DType dtype) {
             return Sequential{Embedding(10000, 64).dtype(dtype).input_length(timesteps),
                               LSTM(64).dtype(dtype), Dropout(0.3).dtype(dtype),
                               Dense(1).dtype(dtype).activation("sigmoid")};
           },
       .sample_shape = {150},
       .input_dtype = DType::i64,
       .vocabulary = 10000,
       .loss = "binary_crossentropy",
       .keras_params = 673089},
      {.name = "bidirectional_imdb",
       .description =
           "bidirectional_imdb: Embedding(10000, 64) -> Bidirectional(LSTM(64)) -> Dense(1)",
       .build_for =
           [](int64_t timesteps, DType dtype) {
             return Sequential{Embedding(10000, 64).dtype(dtype).input_length(timesteps),
                               Bidirectional(LSTM(64).dtype(dtype)), Dropout(0.3).dtype(dtype),
                               Dense(1).dtype(dtype).activation("sigmoid")};
           },
       .sample_shape = {150},
       .input_dtype = DType::i64,
       .vocabulary = 10000,
       .loss = "binary_crossentropy",
       .keras_params = 706177},
  };
}

}  // namespace

ChapterModel ChapterModel::with_timesteps(int64_t timesteps) const {
  WEFT_CHECK(timesteps > 0, "{}: timesteps must be positive, got {}", name, timesteps);
  ChapterModel copy = *this;
  copy.sample_shape[0] = timesteps;
  return copy;
}

const std::vector<ChapterModel>& chapter_models() {
  static const std::vector<ChapterModel> models = make_chapter_models();
  return models;
}

const ChapterModel& chapter_model(const std::string& name) {
  std::vector<std::string> names;
  for (const ChapterModel& model : chapter_models()) {
    if (model.name == name) return model;
    names.push_back(model.name);
  }
  throw Error("no chapter model \"{}\"; the models are: {}", name, fmt::join(names, ", "));
}

Tensor sample_batch(const ChapterModel& model, int64_t batch, Generator& generator) {
  Shape shape{batch};
  shape.insert(shape.end(), model.sample_shape.begin(), model.sample_shape.end());
  if (model.input_dtype == DType::i64)
    return to_dtype(
        uniform(shape, 0, static_cast<double>(model.vocabulary), {.dtype = DType::f64}, generator),
        DType::i64);
  return randn(shape, {.dtype = model.input_dtype}, generator);
}

Tensor sample_labels(const ChapterModel& model, int64_t batch, Generator& generator) {
  if (model.loss == "binary_crossentropy")
    return to_dtype(to_dtype(uniform({batch}, 0, 2, {.dtype = DType::f64}, generator), DType::i64),
                    DType::f32);
  return randn({batch}, {}, generator);
}

}  // namespace weft
