// GFLOP/s of weft::gemm (fp32) on the shapes weft's RNNs multiply, single-threaded and on the
// default pool, beside OpenBLAS's sgemm on the same shapes and threads where OpenBLAS is installed
// (a yardstick, loaded at run time: weft does not depend on it; tools/bench.sh installs it). One
// line per shape: "gemm MxNxK ta tb: X GFLOP/s, OpenBLAS Y (median of N runs, T threads)".
#include <dlfcn.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
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

// OpenBLAS's CBLAS entry points, when the library is installed.
struct OpenBlas {
  using Sgemm = void (*)(int order, int ta, int tb, int m, int n, int k, float alpha,
                         const float* a, int lda, const float* b, int ldb, float beta, float* c,
                         int ldc);
  Sgemm sgemm = nullptr;
  void (*set_num_threads)(int) = nullptr;
  static constexpr int row_major = 101, no_trans = 111, trans = 112;  // CBLAS's enums

  static const OpenBlas& get() {
    static const OpenBlas blas = [] {
      OpenBlas loaded;
      if (void* library = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL)) {
        loaded.sgemm = reinterpret_cast<Sgemm>(dlsym(library, "cblas_sgemm"));
        loaded.set_num_threads =
            reinterpret_cast<void (*)(int)>(dlsym(library, "openblas_set_num_threads"));
      }
      return loaded.sgemm && loaded.set_num_threads ? loaded : OpenBlas{};
    }();
    return blas;
  }
};

// Median GFLOP/s of `call` over timed samples; each sample repeats the call for at least ~5 ms
// so that the clock's resolution and one-off wake-ups do not dominate the small shapes.
template <typename Call>
double median_rate(const Shape& s, const Call& call) {
  const auto seconds = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
  call();  // warm caches and the packing buffers
  const auto t0 = Clock::now();
  call();
  const double once = std::max(seconds(Clock::now() - t0), 1e-9);
  const int reps = static_cast<int>(std::clamp(5e-3 / once, 1.0, 1e6));
  const int samples = static_cast<int>(std::clamp(0.5 / (once * reps), 5.0, 51.0));
  const double flops = 2.0 * static_cast<double>(s.m * s.n) * static_cast<double>(s.k) * reps;
  std::vector<double> rates;
  for (int i = 0; i < samples; ++i) {
    const auto start = Clock::now();
    for (int r = 0; r < reps; ++r) call();
    rates.push_back(flops / seconds(Clock::now() - start) * 1e-9);
  }
  std::nth_element(rates.begin(), rates.begin() + rates.size() / 2, rates.end());
  return rates[rates.size() / 2];
}

void bench(const Shape& s, bool use_pool, std::mt19937& rng) {
  const int64_t lda = s.ta == Trans::no ? s.k : s.m;
  const int64_t ldb = s.tb == Trans::no ? s.n : s.k;
  const std::vector<float> a = random_matrix(s.m * s.k, rng);
  const std::vector<float> b = random_matrix(s.k * s.n, rng);
  std::vector<float> c(static_cast<std::size_t>(s.m * s.n));
  const auto weft_call = [&] {
    weft::gemm(s.ta, s.tb, s.m, s.n, s.k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data(), s.n);
  };
  const int threads = use_pool ? weft::default_thread_pool().num_threads() : 1;
  double rate = 0;
  if (use_pool) {
    rate = median_rate(s, weft_call);
  } else {
    // gemm stays on the calling thread inside a parallel_for body.
    weft::ThreadPool serial(1);
    serial.parallel_for(0, 1, 1, [&](int64_t, int64_t) { rate = median_rate(s, weft_call); });
  }
  std::string yardstick;
  if (const OpenBlas& blas = OpenBlas::get(); blas.sgemm != nullptr) {
    blas.set_num_threads(threads);
    const auto trans = [](Trans t) {
      return t == Trans::yes ? OpenBlas::trans : OpenBlas::no_trans;
    };
    const auto int32 = [](int64_t v) { return static_cast<int>(v); };
    const double openblas = median_rate(s, [&] {
      blas.sgemm(OpenBlas::row_major, trans(s.ta), trans(s.tb), int32(s.m), int32(s.n), int32(s.k),
                 1.0f, a.data(), int32(lda), b.data(), int32(ldb), 0.0f, c.data(), int32(s.n));
    });
    yardstick = fmt::format(", OpenBLAS {:.1f} ({:.2f}x)", openblas, rate / openblas);
  }
  fmt::print("gemm {}x{}x{} {} {}: {:.1f} GFLOP/s{} ({} thread{})\n", s.m, s.n, s.k, letter(s.ta),
             letter(s.tb), rate, yardstick, threads, threads == 1 ? "" : "s");
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
