// weft's side of the workloads in shared/spec/benchmarks.md, eager mode (the tape, no
// compiler): prints "ID median_ms" per figure. tools/bench.sh runs it beside PyTorch.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "weft/weft.h"

using namespace weft;

namespace {

template <typename Step>
double median_ms(Step step, int repeats) {
  step();  // warm-up: first-touch allocations
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    step();
    times.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

Tensor token_batch(int64_t batch, int64_t steps, int64_t vocabulary) {
  return to_dtype(uniform({batch, steps}, 0, static_cast<double>(vocabulary)), DType::i64);
}

Tensor binary_labels(int64_t batch) {
  return to_dtype(to_dtype(uniform({batch}, 0, 2), DType::i64), DType::f32);
}

void train_step(const char* id, Sequential& model, const Tensor& x, const Tensor& y, int repeats) {
  const double ms = median_ms(
      [&] {
        model.fit(x, y, {.epochs = 1, .batch_size = x.size(0), .shuffle = false, .verbose = 0});
      },
      repeats);
  std::printf("%s %.3f\n", id, ms);
}

}  // namespace

int main() {
  manual_seed(1);
  {
    Sequential w1{Embedding(10000, 64).input_length(200),
                  Bidirectional(LSTM(64).return_sequences(true)),
                  Dropout(0.3),
                  LSTM(32),
                  Dropout(0.3),
                  Dense(32).activation("relu"),
                  Dense(1).activation("sigmoid")};
    w1.compile(Adam(), "binary_crossentropy");
    const Tensor x = token_batch(64, 200, 10000);
    train_step("W1", w1, x, binary_labels(64), 5);
    std::printf("W1i %.3f\n", median_ms([&] { w1.predict(x, 64); }, 7));
  }
  const char* w2_ids[] = {"W2-SimpleRNN", "W2-LSTM", "W2-GRU"};
  for (int kind = 0; kind < 3; ++kind) {
    Sequential w2{Embedding(5000, 32).input_length(100)};
    if (kind == 0) w2.add(SimpleRNN(64));
    if (kind == 1) w2.add(LSTM(64));
    if (kind == 2) w2.add(GRU(64));
    w2.add(Dense(1).activation("sigmoid"));
    w2.compile(Adam(), "binary_crossentropy");
    train_step(w2_ids[kind], w2, token_batch(128, 100, 5000), binary_labels(128), 9);
  }
  {
    Sequential w3{LSTM(64).return_sequences(true).input_shape({30, 1}),
                  Dropout(0.2),
                  LSTM(32),
                  Dropout(0.2),
                  Dense(16).activation("relu"),
                  Dense(1)};
    w3.compile(Adam(), "mse");
    train_step("W3", w3, randn({32, 30, 1}), randn({32}), 21);
  }
}
