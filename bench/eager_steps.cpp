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
  Generator generator(1);
  {
    const ChapterModel& chapter = chapter_model("sentiment_imdb");
    Sequential w1 = chapter.build();
    w1.compile(Adam(), chapter.loss);
    const Tensor x = sample_batch(chapter, 64, generator);
    train_step("W1", w1, x, sample_labels(chapter, 64, generator), 5);
    std::printf("W1i %.3f\n", median_ms([&] { w1.predict(x, 64); }, 7));
  }
  for (const auto& [id, name] :
       {std::pair{"W2-SimpleRNN", "compare_simple_rnn"}, std::pair{"W2-LSTM", "compare_lstm"},
        std::pair{"W2-GRU", "compare_gru"}}) {
    const ChapterModel& chapter = chapter_model(name);
    Sequential w2 = chapter.build();
    w2.compile(Adam(), chapter.loss);
    train_step(id, w2, sample_batch(chapter, 128, generator),
               sample_labels(chapter, 128, generator), 9);
  }
  {
    const ChapterModel& chapter = chapter_model("temperature_forecast");
    Sequential w3 = chapter.build();
    w3.compile(Adam(), chapter.loss);
    train_step("W3", w3, sample_batch(chapter, 32, generator),
               sample_labels(chapter, 32, generator), 21);
  }
}
