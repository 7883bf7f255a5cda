// The models of the chapter's programs, by name: one definition each for the tests, the
// benchmarks and the `weft` tool (which gradchecks and inspects them).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "weft/models/sequential.h"
#include "weft/runtime/random.h"

namespace weft {

struct ChapterModel {
  std::string name;         // "sentiment_imdb", "temperature_forecast", ...
  std::string description;  // one line
  // Every chapter model reads sequences; this builds it for sequences of `timesteps` steps, with
  // weights (and recurrent computation) in `dtype`: float32 as in the chapter, float64 for
  // gradient checks.
  std::function<Sequential(int64_t timesteps, DType dtype)> build_for;
  Shape sample_shape;  // one sample, batch excluded: {timesteps} token ids or {timesteps, features}
  DType input_dtype;   // int64 token ids or float32
  int64_t vocabulary;  // token ids lie in [0, vocabulary); 0 for float32 inputs
  std::string loss;    // as compile() takes it
  int64_t keras_params;  // Keras's total (keras-semantics.md: where the chapter differs, Keras is
                         // right)

  int64_t timesteps() const { return sample_shape.at(0); }
  // The chapter's model.
  Sequential build(DType dtype = DType::f32) const { return build_for(timesteps(), dtype); }
  // The same model for another sequence length (no weight depends on the length, so the
  // parameter total is unchanged).
  ChapterModel with_timesteps(int64_t timesteps) const;
};

const std::vector<ChapterModel>& chapter_models();
// Throws weft::Error listing the known names.
const ChapterModel& chapter_model(const std::string& name);

// A random valid input batch: token ids in range, or standard normal values.
Tensor sample_batch(const ChapterModel& model, int64_t batch, Generator& generator);
// Random labels for the model's loss: 0/1 for binary_crossentropy, standard normal for mse.
Tensor sample_labels(const ChapterModel& model, int64_t batch, Generator& generator);

}  // namespace weft
