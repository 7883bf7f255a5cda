// weft's side of the workloads in shared/spec/benchmarks.md, through the public API as a user
// calls it (fit on one batch, predict, predict_on_batch, a predictor for a stream). `weft_steps
// eager` runs every step on the tape, `weft_steps compiled` as compiled steps
// (Sequential::jit_compile): the same models, batches and calls. The compiled run also reports each
// workload's first call (capture and compile, kept out of the step timings) and the compiler's
// figures: W1's training step captured and compiled at 100 and 400 timesteps. Further arguments
// keep only the figures whose names start with one of them. Prints "FIGURE UNIT VALUE" per figure;
// tools/bench.sh runs it beside PyTorch (bench/pytorch_steps.py, bench/libtorch/libtorch_steps.cpp)
// and prints the ratios. After W1 it reports the process's peak resident memory (W1-peak-memory),
// as PyTorch's sides do. No figure is printed for a model whose compiled step does not compute what
// the eager tape does, or whose loss does not go down (check_workload): the run stops with an error
// instead. WEFT_BENCH_SCALE=N times every figure N times as often, so that a profile of one figure
// is mostly its steps rather than the set-up.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "weft/compiler/compile.h"
#include "weft/weft.h"

using namespace weft;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The process's peak resident memory so far (Linux counts ru_maxrss in KiB).
double peak_resident_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024;
}

void report(const std::string& figure, const char* unit, double value) {
  std::printf("%s %s %.6g\n", figure.c_str(), unit, value);
  std::fflush(stdout);  // a long run shows its figures as they come
}

struct Run {
  bool compiled = false;
  std::vector<std::string> prefixes;  // of the figures to run; none: all
  int repeat_scale = 1;

  bool wants(std::string_view figure) const {
    return prefixes.empty() ||
           std::any_of(prefixes.begin(), prefixes.end(),
                       [&](const std::string& prefix) { return figure.starts_with(prefix); });
  }

  // The median seconds per call of `call`, over `repeats` timings of `calls` calls each. One
  // untimed call first: it allocates, and in compiled mode captures and compiles the step, which
  // is reported as the figure's first call.
  template <typename Call>
  double median_seconds(const std::string& figure, Call call, int repeats, int calls = 1) const {
    const auto first = Clock::now();
    call();
    if (compiled) report(figure + ":first-call", "s", seconds_since(first));
    std::vector<double> times;
    for (int i = 0; i < repeats * repeat_scale; ++i) {
      const auto start = Clock::now();
      for (int c = 0; c < calls; ++c) call();
      times.push_back(seconds_since(start) / calls);
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  }
};

// A model trained on one fixed batch: one fit() step per timing.
struct Workload {
  std::string id;  // the figure's name; benchmarks.md's id first
  std::function<Sequential()> build;
  std::string loss;
  // The batch (x, y), made when the workload runs: the process then holds only this workload's
  // data, as PyTorch's side does, when W1's peak memory is read.
  std::function<std::pair<Tensor, Tensor>()> batch;
  int repeats;
  std::string predict_id = {};  // when set, predict() on the batch is timed too
};

Workload chapter_workload(std::string id, const std::string& model, int64_t batch, int repeats,
                          Generator& generator, std::string predict_id = {}) {
  const ChapterModel& chapter = chapter_model(model);
  return {.id = std::move(id),
          .build = [&chapter] { return chapter.build(); },
          .loss = chapter.loss,
          .batch =
              [&chapter, batch, &generator] {
                Tensor x = sample_batch(chapter, batch, generator);
                return std::pair{x, sample_labels(chapter, batch, generator)};
              },
          .repeats = repeats,
          .predict_id = std::move(predict_id)};
}

std::vector<Workload> workloads(Generator& generator) {
  std::vector<Workload> list{
      chapter_workload("W1-train", "sentiment_imdb", 64, 11, generator, "W1i-predict"),
      chapter_workload("W2-SimpleRNN-train", "compare_simple_rnn", 128, 9, generator),
      chapter_workload("W2-LSTM-train", "compare_lstm", 128, 9, generator),
      chapter_workload("W2-GRU-train", "compare_gru", 128, 9, generator),
      chapter_workload("W3-train", "temperature_forecast", 32, 21, generator)};
  list.push_back({.id = "W5-train",
                  .build =
                      [] {
                        return Sequential{LSTM(512).input_shape({100, 512}), Dense(1)};
                      },
                  .loss = "mse",
                  .batch =
                      [&generator] {
                        Tensor x = randn({64, 100, 512}, {}, generator);
                        return std::pair{x, randn({64}, {}, generator)};
                      },
                  .repeats = 5,
                  .predict_id = "W5-predict"});
  return list;
}

double largest_difference(const Tensor& a, const Tensor& b) { return max(abs(a - b)).item(); }

// A fast wrong step must not be reported: before a workload's figures are printed, its model,
// trained from one start for a few steps, must bring the loss (evaluated, dropout off) down,
// and in a compiled run give the eager tape's losses and predictions within float tolerance.
// Throws weft::Error naming the workload and what differs.
void check_workload(const Run& run, const Workload& workload, const Tensor& x, const Tensor& y) {
  constexpr int steps = 3;
  const int64_t batch = x.size(0);
  struct Trained {
    double loss_before, loss_after;
    std::vector<double> step_losses;
    Tensor predictions;
  };
  const auto train = [&](bool jit) {
    manual_seed(11);
    Sequential model = workload.build();
    model.jit_compile = jit;
    model.compile(Adam(), workload.loss);
    Trained trained;
    trained.loss_before = model.evaluate(x, y, {.batch_size = batch}).at("loss");
    trained.step_losses =
        model.fit(x, y, {.epochs = steps, .batch_size = batch, .shuffle = false, .verbose = 0})
            .history.at("loss");
    trained.loss_after = model.evaluate(x, y, {.batch_size = batch}).at("loss");
    trained.predictions = model.predict(x, batch);
    return trained;
  };
  const Trained trained = train(run.compiled);
  WEFT_CHECK(trained.loss_after < trained.loss_before,
             "{}: the loss did not go down in {} steps on one batch: {} before, {} after",
             workload.id, steps, trained.loss_before, trained.loss_after);
  if (!run.compiled) return;
  const Trained eager = train(false);
  for (int i = 0; i < steps; ++i)
    WEFT_CHECK(std::abs(trained.step_losses[i] - eager.step_losses[i]) <=
                   1e-3 * (1 + std::abs(eager.step_losses[i])),
               "{}: the compiled step's loss at step {} is {}, the eager tape's {}", workload.id,
               i + 1, trained.step_losses[i], eager.step_losses[i]);
  WEFT_CHECK(allclose(trained.predictions, eager.predictions, 1e-3, 1e-4),
             "{}: compiled predictions differ from the eager tape's by up to {}", workload.id,
             largest_difference(trained.predictions, eager.predictions));
}

void time_workload(const Run& run, const Workload& workload) {
  Sequential model = workload.build();
  model.jit_compile = run.compiled;
  model.compile(Adam(), workload.loss);
  const auto [x, y] = workload.batch();
  const int64_t batch = x.size(0);
  const FitOptions one_step{.epochs = 1, .batch_size = batch, .shuffle = false, .verbose = 0};
  const auto train = [&] { model.fit(x, y, one_step); };
  std::vector<std::tuple<std::string, const char*, double>> figures;
  figures.emplace_back(workload.id, "ms",
                       1e3 * run.median_seconds(workload.id, train, workload.repeats));
  if (!workload.predict_id.empty()) {
    const auto predict = [&] { model.predict(x, batch); };
    figures.emplace_back(workload.predict_id, "ms",
                         1e3 * run.median_seconds(workload.predict_id, predict, workload.repeats));
  }
  // Read before the check, whose eager tape would set the process's peak.
  if (workload.id == "W1-train") figures.emplace_back("W1-peak-memory", "MiB", peak_resident_mib());
  check_workload(run, workload, x, y);
  for (const auto& [figure, unit, value] : figures) report(figure, unit, value);
}

// How a figure's calls are made: predict_on_batch, or a predictor bound to the batch's shape
// (Sequential::predictor, weft's call for a stream).
enum class Call { predict_on_batch, predictor };

// Microseconds per call: the latency of one streaming step. Checked first: a few calls of the
// model, compiled (in a compiled run), stream as on the eager tape.
void time_calls(const Run& run, const std::string& figure, const std::function<Sequential()>& build,
                const Tensor& x, Call call) {
  // The calls of `model` (which must stay where it is while they are made).
  const auto calls_of = [&](Sequential& model) -> std::function<Tensor()> {
    if (call == Call::predict_on_batch) return [&model, &x] { return model.predict_on_batch(x); };
    return [predictor = std::make_shared<Predictor>(model.predictor(x.shape())), &x] {
      return (*predictor)(x);
    };
  };
  if (run.compiled) {
    std::vector<Tensor> outputs[2];
    for (bool jit : {false, true}) {
      manual_seed(11);
      Sequential model = build();
      model.jit_compile = jit;
      const std::function<Tensor()> next = calls_of(model);
      for (int step = 0; step < 3; ++step) outputs[jit].push_back(next());
    }
    for (size_t step = 0; step < outputs[0].size(); ++step)
      WEFT_CHECK(allclose(outputs[1][step], outputs[0][step], 1e-4, 1e-5),
                 "{}: compiled step {} differs from the eager tape's by up to {}", figure, step + 1,
                 largest_difference(outputs[1][step], outputs[0][step]));
  }
  Sequential model = build();
  model.jit_compile = run.compiled;
  const std::function<Tensor()> next = calls_of(model);
  report(figure, "us", 1e6 * run.median_seconds(figure, next, 9, 1000));
}

// W1's whole training step at 100 and 400 timesteps (batch 64), captured and compiled as fit()
// does on one thread (compiled run; on two, fit compiles a gradients step of half the batch and
// an apply step, which W1-train:first-call includes): the median of five compiles of each, and
// where its time went (the pass pipeline, the lowering stages, emitting LLVM IR, LLVM's
// optimisation and machine code). The compiles of the two lengths take turns, so that a slow spell
// of this shared machine weighs on both and their ratio (the flatness target) measures the
// compiler, not the spell.
void time_compiler(const Run& run, Generator& generator) {
  struct Length {
    std::string figure;
    Graph graph;
    std::vector<CompileStats> compiles = {};
  };
  std::vector<Length> lengths;
  for (int64_t timesteps : {100, 400}) {
    std::string figure = "compile-W1-T" + std::to_string(timesteps);
    if (!run.compiled || !run.wants(figure)) continue;
    const ChapterModel chapter = chapter_model("sentiment_imdb").with_timesteps(timesteps);
    Sequential model = chapter.build();
    model.compile(Adam(), chapter.loss);
    const Tensor x = sample_batch(chapter, 64, generator);
    const Tensor y = sample_labels(chapter, 64, generator);
    const auto start = Clock::now();
    Graph graph = model.capture_step(StepKind::train, x, y);
    report(figure + ":capture", "s", seconds_since(start));
    lengths.push_back({std::move(figure), std::move(graph)});
  }
  for (int i = 0; i < 5; ++i)
    for (Length& length : lengths)
      length.compiles.push_back(compile(length.graph, {.finite_output = "loss"}).stats());
  const auto is_pass = [](const std::string& stage) {
    return std::any_of(pipeline().begin(), pipeline().end(),
                       [&](const Pass& pass) { return pass.name == stage; });
  };
  for (Length& length : lengths) {
    std::sort(length.compiles.begin(), length.compiles.end(),
              [](const CompileStats& a, const CompileStats& b) { return a.seconds < b.seconds; });
    const CompileStats& median = length.compiles[length.compiles.size() / 2];
    report(length.figure, "s", median.seconds);
    double passes = 0;
    for (const auto& [stage, seconds] : median.stage_seconds)
      if (is_pass(stage)) passes += seconds;
    report(length.figure + ":passes", "s", passes);
    for (const auto& [stage, seconds] : median.stage_seconds)
      if (!is_pass(stage)) report(length.figure + ":" + stage, "s", seconds);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view mode = argc > 1 ? argv[1] : "";
  if (mode != "eager" && mode != "compiled") {
    std::fprintf(stderr, "usage: weft_steps eager|compiled [FIGURE_PREFIX...]\n");
    return 2;
  }
  const char* scale = std::getenv("WEFT_BENCH_SCALE");
  const Run run{.compiled = mode == "compiled",
                .prefixes = {argv + 2, argv + argc},
                .repeat_scale = scale == nullptr ? 1 : std::max(1, std::atoi(scale))};
  manual_seed(1);
  Generator generator(1);
  try {
    for (const Workload& workload : workloads(generator))
      if (run.wants(workload.id)) time_workload(run, workload);
    // W4 through a predictor, as a stream is called: in float32, and deployed with its weights
    // rounded to float16 or bfloat16 values (Sequential::quantize), whose compiled step reads its
    // packed copies in 2 bytes a weight; then by predict_on_batch.
    struct StreamFigure {
      std::string figure, quantized;
      Call call;
    };
    const StreamFigure w4_figures[] = {{"W4-stream-step", "", Call::predictor},
                                       {"W4f16-stream-step", "float16", Call::predictor},
                                       {"W4bf16-stream-step", "bfloat16", Call::predictor},
                                       {"W4-predict_on_batch", "", Call::predict_on_batch}};
    for (const auto& [figure, quantized, call] : w4_figures) {
      if (!run.wants(figure)) continue;
      time_calls(
          run, figure,
          [quantized] {
            Sequential model{LSTM(128).stateful(true).input_shape({1, 32})};
            if (!quantized.empty()) model.quantize(quantized);
            return model;
          },
          randn({1, 1, 32}, {}, generator), call);
    }
    // A model too small to compute anything: the call's own cost, a cache hit when compiled.
    if (run.wants("Dense1-call"))
      time_calls(
          run, "Dense1-call", [] { return Sequential{Dense(1).input_shape({1})}; },
          randn({1, 1}, {}, generator), Call::predict_on_batch);
    time_compiler(run, generator);
  } catch (const Error& error) {
    std::fprintf(stderr, "weft_steps: %s\n", error.what());
    return 1;
  }
}
