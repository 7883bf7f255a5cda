// Sequential::load_weights on arbitrary bytes: the weights are loaded (and the model still
// predicts), or a weft::Error; the model is left as it was when the file is refused.
// WEFT_FUZZ_WRITE_SEED=PATH writes the model's own weight file to PATH and exits (the seed in
// tests/fuzz/corpus/weights was made so).
#include <cstdlib>

#include "fuzz_support.h"
#include "weft/weft.h"

namespace {

weft::Sequential& model() {
  static weft::Sequential m = [] {
    weft::manual_seed(7);
    weft::Sequential built{weft::Embedding(20, 4), weft::LSTM(3), weft::Dense(1)};
    built.build({5});
    return built;
  }();
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* seed = std::getenv("WEFT_FUZZ_WRITE_SEED")) {
    model().save_weights(seed);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = weft::fuzz::scratch() / "model.weights";
  weft::fuzz::write_file(path, std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    model().load_weights(path.string());
    const auto input = weft::zeros({1, 5}, {.dtype = weft::DType::i64});
    weft::fuzz::require(model().predict(input).shape() == weft::Shape{1, 1}, "a prediction");
  } catch (const weft::Error&) {
  }
  return 0;
}
