// Training throughput of fit(), in samples per second, alone or across the ranks of mpirun
// (tools/bench_ranks.sh runs both): a chapter model trained for one epoch on generated data,
// batch_size rows per rank, after an untimed epoch (which compiles the steps). Rank 0 prints
//   MODEL ranks=N threads=T batch_per_rank=B samples_per_second=S
// Usage: fit_throughput [MODEL [SAMPLES [BATCH_PER_RANK]]], by default compare_lstm 4096 64.
#include <weft/weft.h>

#include <chrono>
#include <cstdio>
#include <string>

using namespace weft;

int main(int argc, char** argv) {
  try {
    const std::string name = argc > 1 ? argv[1] : "compare_lstm";
    const int64_t samples = argc > 2 ? std::stoll(argv[2]) : 4096;
    const int64_t batch = argc > 3 ? std::stoll(argv[3]) : 64;
    const ChapterModel& chapter = chapter_model(name);
    manual_seed(1);
    Sequential model = chapter.build();
    model.compile(Adam(), chapter.loss);
    Generator data(2);
    const Tensor x = sample_batch(chapter, samples, data);
    const Tensor y = sample_labels(chapter, samples, data);
    const FitOptions options{.epochs = 1, .batch_size = batch, .verbose = 0};
    model.fit(x, y, options);
    const auto start = std::chrono::steady_clock::now();
    model.fit(x, y, options);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const Cluster& cluster = Cluster::world();
    if (cluster.rank() == 0)
      std::printf("%s ranks=%d threads=%d batch_per_rank=%ld samples_per_second=%.0f\n",
                  name.c_str(), cluster.size(), default_thread_pool().num_threads(),
                  static_cast<long>(batch), static_cast<double>(samples) / seconds);
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "fit_throughput: %s\n", error.what());
    return 1;
  }
}
