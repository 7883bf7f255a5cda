// GFLOP/s of weft::gemm (fp32) on the shapes weft's RNNs multiply, single-threaded and on the
// default pool. One line per shape: "gemm MxNxK ta tb: X GFLOP/s (median of N runs, T threads)".
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <vector>

#include "weft/runtime/gemm.h"
#include "weft/runtime/thread_pool.h"

namespace {

using weft::Trans;
using Clock = std::chrono::steady_clock;

struct Shape {
  int64_t m, n, k;
  Trans ta, tb;
};

std::vector<float> random_matrix(int64_t size, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(size));
  for (float& x : v) x = dist(rng);
  return v;
}

char letter(Trans t) { return t == Trans::yes ? 't' : 'n'; }

// Median GFLOP/s over timed samples; each sample repeats the call for at least ~5 ms so that the
// clock's resolution and one-off wake-ups do not dominate the small shapes.
void bench(const Shape& s, bool use_pool, std::mt19937& rng) {
  const int64_t lda = s.ta == Trans::no ? s.k : s.m;
  const int64_t ldb = s.tb == Trans::no ? s.n : s.k;
  const std::vector<float> a = random_matrix(s.m * s.k, rng);
  const std::vector<float> b = random_matrix(s.k * s.n, rng);
  std::vector<float> c(static_cast<std::size_t>(s.m * s.n));
  const auto call = [&] {
    weft::gemm(s.ta, s.tb, s.m, s.n, s.k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data(), s.n);
  };
  const auto seconds = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };

  std::vector<double> rates;
  const auto measure = [&] {
    call();  // warm caches and the packing buffers
    const auto t0 = Clock::now();
    call();
    const double once = std::max(seconds(Clock::now() - t0), 1e-9);
    const int reps = static_cast<int>(std::clamp(5e-3 / once, 1.0, 1e6));
    const int samples = static_cast<int>(std::clamp(0.5 / (once * reps), 5.0, 51.0));
    const double flops = 2.0 * static_cast<double>(s.m * s.n) * static_cast<double>(s.k) * reps;
    for (int i = 0; i < samples; ++i) {
      const auto start = Clock::now();
      for (int r = 0; r < reps; ++r) call();
      rates.push_back(flops / seconds(Clock::now() - start) * 1e-9);
    }
  };
  int threads = weft::default_thread_pool().num_threads();
  if (use_pool) {
    measure();
  } else {
    // gemm stays on the calling thread inside a parallel_for body.
    weft::ThreadPool serial(1);
    serial.parallel_for(0, 1, 1, [&](int64_t, int64_t) { measure(); });
    threads = 1;
  }
  std::nth_element(rates.begin(), rates.begin() + rates.size() / 2, rates.end());
  fmt::print("gemm {}x{}x{} {} {}: {:.1f} GFLOP/s (median of {} runs, {} thread{})\n", s.m, s.n,
             s.k, letter(s.ta), letter(s.tb), rates[rates.size() / 2], rates.size(), threads,
             threads == 1 ? "" : "s");
}

}  // namespace

int main() {
  constexpr Trans n = Trans::no;
  constexpr Trans t = Trans::yes;
  // Forward products and the two backward products (dX = dY W^T, dW = X^T dY) of each.
  const std::vector<Shape> shapes = {
      {64, 256, 64, n, n},    {64, 64, 256, n, t},      {64, 256, 64, t, n},
      {64, 2048, 512, n, n},  {64, 512, 2048, n, t},    {512, 2048, 64, t, n},
      {32, 256, 1, n, n},     {32, 1, 256, n, t},       {1, 256, 32, t, n},
      {12800, 256, 64, n, n}, {12800, 64, 256, n, t},   {64, 256, 12800, t, n},
      {512, 512, 512, n, n},  {2048, 2048, 2048, n, n},
  };
  std::mt19937 rng(42);
  for (bool use_pool : {false, true}) {
    for (const Shape& s : shapes) bench(s, use_pool, rng);
  }
}
