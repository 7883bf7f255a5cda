#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/runtime/error.h"
#include "weft/runtime/gemm.h"
#include "weft/runtime/thread_pool.h"

namespace weft {
namespace {

struct Shape {
  int64_t m, n, k;
};

struct Scalars {
  double alpha, beta;
};
const Scalars scalars[] = {{1, 0}, {-1.5, 1}, {0.5, -2}, {0, 0.5}};

constexpr Trans no = Trans::no;
constexpr Trans yes = Trans::yes;

// Uniform in [-1, 1). xorshift64* rather than <random>, which dominates the run time of an
// unoptimised sanitizer build.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  double next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return static_cast<double>((state_ * 0x2545F4914F6CDD1Dull) >> 11) * 0x1p-52 - 1;
  }

 private:
  uint64_t state_;
};

// Row-major matrix of rows x cols in a buffer whose rows are `ld` >= cols apart.
template <typename T>
struct Matrix {
  int64_t rows, cols, ld;
  std::vector<T> data;

  Matrix(int64_t r, int64_t c, int64_t padding, Random& rng)
      : rows(r), cols(c), ld(c + padding), data(static_cast<std::size_t>(r * (c + padding))) {
    for (T& x : data) x = static_cast<T>(rng.next());
  }
  T& at(int64_t i, int64_t j) { return data[static_cast<std::size_t>(i * ld + j)]; }
  T at(int64_t i, int64_t j) const { return data[static_cast<std::size_t>(i * ld + j)]; }
};

// op(X) as a dense row-major matrix of doubles, so that the reference's inner loop is contiguous.
template <typename T>
std::vector<double> dense(const Matrix<T>& x, bool transpose) {
  std::vector<double> out(x.data.size());
  double* o = out.data();
  const T* in = x.data.data();
  for (int64_t i = 0; i < x.rows; ++i) {
    for (int64_t j = 0; j < x.cols; ++j) {
      o[transpose ? j * x.rows + i : i * x.cols + j] = in[i * x.ld + j];
    }
  }
  return out;
}

// Runs one gemm on random operands whose rows are `padding` wider than needed and compares it
// with a double-accumulating reference. nan_c fills C with NaN first (only meaningful with
// beta == 0); C's padding must come back untouched.
template <typename T>
void check_gemm(Trans ta, Trans tb, const Shape& s, const Scalars& sc, int64_t padding, Random& rng,
                bool nan_c = false) {
  const bool a_t = ta == yes;
  const bool b_t = tb == yes;
  const Matrix<T> a(a_t ? s.k : s.m, a_t ? s.m : s.k, padding, rng);
  const Matrix<T> b(b_t ? s.n : s.k, b_t ? s.k : s.n, padding, rng);
  Matrix<T> c(s.m, s.n, padding, rng);
  if (nan_c) {
    for (int64_t i = 0; i < s.m; ++i) {
      for (int64_t j = 0; j < s.n; ++j) c.at(i, j) = std::numeric_limits<T>::quiet_NaN();
    }
  }
  const Matrix<T> c0 = c;
  gemm(ta, tb, s.m, s.n, s.k, static_cast<T>(sc.alpha), a.data.data(), a.ld, b.data.data(), b.ld,
       static_cast<T>(sc.beta), c.data.data(), c.ld);

  const std::vector<double> op_a = dense(a, a_t);    // M x K
  const std::vector<double> op_bt = dense(b, !b_t);  // N x K
  // Rounding error of a length-K dot product is bounded by about K * eps * sum |a_k b_k|.
  const double eps = std::numeric_limits<T>::epsilon();
  int failures = 0;
  for (int64_t i = 0; i < s.m; ++i) {
    for (int64_t j = 0; j < c.ld; ++j) {
      const T got = c.at(i, j);
      if (j >= s.n) {  // the padding past N is never written
        ASSERT_EQ(std::memcmp(&got, &c0.data[static_cast<std::size_t>(i * c.ld + j)], sizeof(T)),
                  0);
        continue;
      }
      const double* a_row = op_a.data() + i * s.k;
      const double* b_col = op_bt.data() + j * s.k;
      double sum = 0;
      double magnitude = 0;
      for (int64_t p = 0; p < s.k; ++p) {
        const double product = a_row[p] * b_col[p];
        sum += product;
        magnitude += product < 0 ? -product : product;
      }
      double want = sc.alpha * sum;
      magnitude *= std::abs(sc.alpha);
      if (sc.beta != 0) {
        want += sc.beta * c0.at(i, j);
        magnitude += std::abs(sc.beta * c0.at(i, j));
      }
      const double tolerance = 2 * (static_cast<double>(s.k) + 2) * eps * magnitude;
      if (!(std::abs(got - want) <= tolerance) && ++failures <= 3) {
        ADD_FAILURE() << "C(" << i << ", " << j << ") = " << got << ", want " << want << " +- "
                      << tolerance;
      }
    }
  }
  ASSERT_EQ(failures, 0) << "for M,N,K = " << s.m << "," << s.n << "," << s.k << " ta=" << a_t
                         << " tb=" << b_t << " alpha=" << sc.alpha << " beta=" << sc.beta
                         << " padding=" << padding;
}

// Every transpose and alpha/beta pair, on shapes around the micro-kernel's tile (8 x 32 floats,
// 8 x 16 doubles with AVX-512): ragged edges, single rows and columns, K of 1, and single rows
// of A over many columns (the row path: 16 vectors at a time, then vectors, then a tail).
template <typename T>
void check_small_shapes() {
  const Shape small[] = {{1, 1, 1},    {3, 17, 5},    {17, 3, 63},   {65, 129, 3},
                         {8, 32, 256}, {1, 256, 32},  {32, 1, 256},  {32, 256, 1},
                         {5, 7, 513},  {2, 1100, 17}, {1, 512, 160}, {1, 1001, 37}};
  Random rng(1234);
  int64_t padding = 0;
  for (const Shape& s : small) {
    for (Trans ta : {no, yes}) {
      for (Trans tb : {no, yes}) {
        for (const Scalars& sc : scalars) {
          padding = (padding + 1) % 3;
          ASSERT_NO_FATAL_FAILURE(check_gemm<T>(ta, tb, s, sc, padding, rng, sc.beta == 0));
        }
      }
    }
  }
}

TEST(Gemm, FloatSmallShapes) { check_small_shapes<float>(); }

TEST(Gemm, DoubleSmallShapes) { check_small_shapes<double>(); }

// Shapes whose blocking loops take more than one trip: K past the 256-deep pass, N past the
// packed block of B (384 floats or 192 doubles wide at full depth), M past the packed block of A
// (2048 float or 1024 double rows at full depth). One alpha/beta pair each, taken in turn.
TEST(Gemm, BlockBoundaries) {
  Random rng(99);
  std::size_t turn = 0;
  const auto next_scalars = [&turn] { return scalars[turn++ % std::size(scalars)]; };
  for (Trans ta : {no, yes}) {
    for (Trans tb : {no, yes}) {
      for (const Shape& s :
           {Shape{63, 65, 129}, Shape{9, 33, 257}, Shape{5, 40, 600}, Shape{2, 420, 300}}) {
        ASSERT_NO_FATAL_FAILURE(check_gemm<float>(ta, tb, s, next_scalars(), 1, rng));
        ASSERT_NO_FATAL_FAILURE(check_gemm<double>(ta, tb, s, next_scalars(), 2, rng));
      }
      ASSERT_NO_FATAL_FAILURE(check_gemm<float>(ta, tb, {64, 256, 64}, next_scalars(), 0, rng));
      ASSERT_NO_FATAL_FAILURE(check_gemm<float>(ta, tb, {2050, 4, 257}, next_scalars(), 0, rng));
      ASSERT_NO_FATAL_FAILURE(check_gemm<double>(ta, tb, {1030, 2, 260}, next_scalars(), 1, rng));
    }
  }
}

// Products large enough (over 30 MFLOP) for gemm to split them across the default pool, by rows
// (M >= N) and by columns, with the operand that the split offsets both plain and transposed; and
// by K (K at least 4x M and N: partial products summed after), with ragged tiles, a K that ends
// in a short pass, and beta 0 (C's NaN must not leak), 0.5 and 1.
TEST(Gemm, ThreadedSplits) {
  Random rng(5);
  for (Trans t : {no, yes}) {
    ASSERT_NO_FATAL_FAILURE(check_gemm<float>(t, no, {161, 64, 1536}, {1, 0}, 1, rng, true));
    ASSERT_NO_FATAL_FAILURE(check_gemm<float>(no, t, {64, 161, 1536}, {0.5, 1}, 2, rng));
  }
  for (Trans ta : {no, yes}) {
    for (Trans tb : {no, yes}) {
      ASSERT_NO_FATAL_FAILURE(check_gemm<float>(ta, tb, {37, 45, 9100}, {1, 0}, 1, rng, true));
      ASSERT_NO_FATAL_FAILURE(check_gemm<float>(ta, tb, {45, 37, 9100}, {0.5, 1}, 0, rng));
      ASSERT_NO_FATAL_FAILURE(check_gemm<double>(ta, tb, {20, 33, 23000}, {1, 1}, 2, rng));
      // N a fraction of a tile: computed as C^T, whose columns are C's rows.
      ASSERT_NO_FATAL_FAILURE(check_gemm<float>(ta, tb, {300, 6, 9100}, {1, 0.5}, 1, rng));
    }
  }
}

// A bias row is added to C after everything else, as an add after the product would add it: the
// same bits, on every path (tiles whole and ragged, K in several passes, the row path, C^T for a
// narrow N, K = 0, and the splits across the pool by rows, columns and K).
template <typename T>
void check_bias(Trans ta, Trans tb, const Shape& s, const Scalars& sc, Random& rng) {
  const bool a_t = ta == yes, b_t = tb == yes;
  const Matrix<T> a(a_t ? s.k : s.m, a_t ? s.m : s.k, 1, rng);
  const Matrix<T> b(b_t ? s.n : s.k, b_t ? s.k : s.n, 2, rng);
  const Matrix<T> bias(1, s.n, 0, rng);
  Matrix<T> added(s.m, s.n, 3, rng);
  Matrix<T> fused = added;
  gemm(ta, tb, s.m, s.n, s.k, static_cast<T>(sc.alpha), a.data.data(), a.ld, b.data.data(), b.ld,
       static_cast<T>(sc.beta), added.data.data(), added.ld);
  for (int64_t i = 0; i < s.m; ++i) {
    for (int64_t j = 0; j < s.n; ++j) added.at(i, j) += bias.at(0, j);
  }
  gemm(ta, tb, s.m, s.n, s.k, static_cast<T>(sc.alpha), a.data.data(), a.ld, b.data.data(), b.ld,
       static_cast<T>(sc.beta), fused.data.data(), fused.ld, bias.data.data());
  ASSERT_EQ(std::memcmp(added.data.data(), fused.data.data(), sizeof(T) * added.data.size()), 0)
      << "for M,N,K = " << s.m << "," << s.n << "," << s.k << " ta=" << a_t << " tb=" << b_t
      << " alpha=" << sc.alpha << " beta=" << sc.beta;
}

TEST(Gemm, BiasIsAddedAsAnAddAfterTheProduct) {
  const Shape shapes[] = {{64, 256, 64},   {9, 33, 257},    {1, 70, 45},
                          {1, 600, 300},   {300, 6, 300},   {3, 5, 0},
                          {161, 64, 1536}, {64, 161, 1536}, {37, 45, 9100}};
  Random rng(21);
  for (const Shape& s : shapes) {
    for (Trans ta : {no, yes}) {
      for (Trans tb : {no, yes}) {
        for (const Scalars& sc : scalars) {
          ASSERT_NO_FATAL_FAILURE(check_bias<float>(ta, tb, s, sc, rng));
          ASSERT_NO_FATAL_FAILURE(check_bias<double>(ta, tb, s, sc, rng));
        }
      }
    }
  }
}

TEST(Gemm, LeadingDimensionsWiderThanRows) {
  Random rng(7);
  for (Trans ta : {no, yes}) {
    for (Trans tb : {no, yes}) {
      ASSERT_NO_FATAL_FAILURE(check_gemm<float>(ta, tb, {37, 70, 45}, {1, 0.5}, 29, rng));
      ASSERT_NO_FATAL_FAILURE(check_gemm<double>(ta, tb, {20, 9, 300}, {2, 0}, 11, rng, true));
    }
  }
}

TEST(Gemm, RowsOfAPageApart) {
  // gemm reads an untransposed A in place unless its rows are a multiple of 4 KiB apart and N is
  // wide; then it packs (transposes) A instead, which these leading dimensions force.
  Random rng(8);
  for (Trans tb : {no, yes}) {
    ASSERT_NO_FATAL_FAILURE(check_gemm<float>(no, tb, {17, 140, 300}, {1, 0}, 1024 - 300, rng));
    ASSERT_NO_FATAL_FAILURE(check_gemm<double>(no, tb, {17, 70, 300}, {2, 1}, 512 - 300, rng));
  }
}

TEST(Gemm, BetaZeroIgnoresNanInC) {
  Random rng(11);
  ASSERT_NO_FATAL_FAILURE(check_gemm<float>(no, no, {64, 256, 64}, {1, 0}, 0, rng, true));
  // alpha == 0 and K == 0 only scale C, and with beta == 0 they overwrite the NaN too.
  std::vector<float> c(6, std::numeric_limits<float>::quiet_NaN());
  const float a[2] = {1, 2};
  gemm(no, no, 2, 3, 1, 0.0f, a, 1, a, 3, 0.0f, c.data(), 3);
  for (float x : c) EXPECT_EQ(x, 0.0f);
}

TEST(Gemm, DegenerateSizes) {
  std::vector<double> c = {1, 2, 3, 4};
  // K == 0: C = beta * C, without touching A or B.
  gemm(no, no, 2, 2, 0, 1.0, nullptr, 1, nullptr, 2, 3.0, c.data(), 2);
  EXPECT_EQ(c, (std::vector<double>{3, 6, 9, 12}));
  // M == 0 or N == 0: nothing at all.
  gemm(no, no, 0, 2, 5, 1.0, nullptr, 5, nullptr, 2, 0.0, c.data(), 2);
  gemm(yes, yes, 2, 0, 5, 1.0, nullptr, 2, nullptr, 5, 0.0, c.data(), 1);
  EXPECT_EQ(c, (std::vector<double>{3, 6, 9, 12}));
}

TEST(Gemm, RejectsBadArguments) {
  float x[16] = {};
  EXPECT_THROW(gemm(no, no, -1, 2, 2, 1.0f, x, 2, x, 2, 0.0f, x, 2), Error);
  EXPECT_THROW(gemm(no, no, 2, 2, 3, 1.0f, x, 2, x, 2, 0.0f, x, 2), Error);   // lda
  EXPECT_THROW(gemm(yes, no, 3, 2, 2, 1.0f, x, 2, x, 2, 0.0f, x, 2), Error);  // lda
  EXPECT_THROW(gemm(no, yes, 2, 2, 3, 1.0f, x, 3, x, 2, 0.0f, x, 2), Error);  // ldb
  EXPECT_THROW(gemm(no, no, 2, 3, 2, 1.0f, x, 2, x, 3, 0.0f, x, 2), Error);   // ldc
}

TEST(Gemm, SameResultInsideAParallelRegion) {
  // Inside a parallel_for body gemm runs on the calling thread. Each thread's slice is blocked the
  // same way as the whole, so the sums are bit-identical.
  Random rng(3);
  const Matrix<float> a(128, 256, 0, rng);
  const Matrix<float> b(256, 96, 0, rng);
  std::vector<float> threaded(128 * 96);
  std::vector<float> serial(128 * 96);
  const auto multiply = [&](std::vector<float>& c) {
    gemm(no, no, 128, 96, 256, 1.0f, a.data.data(), 256, b.data.data(), 96, 0.0f, c.data(), 96);
  };
  multiply(threaded);
  ThreadPool single(1);
  single.parallel_for(0, 1, 1, [&](int64_t, int64_t) {
    EXPECT_TRUE(ThreadPool::in_parallel_region());
    multiply(serial);
  });
  EXPECT_EQ(threaded, serial);
}

// Inside a parallel_for body a product of 10^8 flops or more runs in parts that an idle thread of
// the pool may take (ThreadPool::share): here the body's other chunk returns at once, so the
// other thread is idle while the product runs, in some of the repeats at least. Split by rows,
// by columns and by K (a weight gradient's shape), with ragged tiles and beta 0 over NaN: right
// against the reference every time, and the same bits every time whoever ran the parts. The
// splits of panels give exactly one thread's product (a pool of one runs it whole).
TEST(Gemm, ProductsInsideAParallelRegionAreSharedWithIdleThreads) {
  struct Case {
    Trans ta, tb;
    Shape shape;
    Scalars scalars;
  };
  const Case cases[] = {{no, no, {6400, 256, 64}, {1, 0}},     // rows
                        {no, yes, {6401, 250, 64}, {0.5, 1}},  // rows, ragged
                        {yes, no, {64, 1601, 520}, {1, 0}},    // columns
                        {yes, no, {64, 256, 6400}, {1, 0}},    // K, four parts
                        {yes, yes, {61, 250, 6500}, {1, 0.5}}};
  const int threads_before = default_thread_pool().num_threads();
  Random rng(8);
  for (const Case& c : cases) {
    const Shape& s = c.shape;
    SCOPED_TRACE(testing::Message() << "M,N,K = " << s.m << "," << s.n << "," << s.k);
    const Matrix<float> a(c.ta == yes ? s.k : s.m, c.ta == yes ? s.m : s.k, 1, rng);
    const Matrix<float> b(c.tb == yes ? s.n : s.k, c.tb == yes ? s.k : s.n, 0, rng);
    const Matrix<float> c0(s.m, s.n, 2, rng);
    // C computed inside a body of the default pool's parallel_for, the other chunk idle.
    const auto in_region = [&] {
      Matrix<float> out = c0;
      parallel_for(0, 2, 1, [&](int64_t lo, int64_t) {
        if (lo != 0) return;
        gemm(c.ta, c.tb, s.m, s.n, s.k, c.scalars.alpha, a.data.data(), a.ld, b.data.data(), b.ld,
             c.scalars.beta, out.data.data(), out.ld);
      });
      return out.data;
    };
    set_num_threads(2);
    const std::vector<float> first = in_region();
    for (int repeat = 0; repeat < 4; ++repeat) EXPECT_EQ(in_region(), first);
    parallel_for(0, 2, 1, [&](int64_t lo, int64_t) {
      if (lo == 0) check_gemm<float>(c.ta, c.tb, s, c.scalars, 1, rng, c.scalars.beta == 0);
    });
    if (s.k < 4 * std::max(s.m, s.n)) {
      set_num_threads(1);
      EXPECT_EQ(in_region(), first);
    }
  }
  set_num_threads(threads_before);
}

// The values B is rounded to before it is packed: as they are, float16's, or bfloat16's (the low
// 16 bits of a float cleared).
enum class Rounding { none, float16, bfloat16 };

template <typename T>
T rounded(T value, Rounding rounding) {
  if (rounding == Rounding::float16) return static_cast<T>(static_cast<_Float16>(value));
  if (rounding == Rounding::bfloat16)
    return std::bit_cast<float>(std::bit_cast<std::uint32_t>(static_cast<float>(value)) &
                                0xffff0000u);
  return value;
}

// A product of one row by B inside a PackedBScope reads PackedB's copy of B, with each column
// summed in the same order, so the results are bit-identical to B's own. Widths around the copy's
// blocks (256 floats, 128 doubles with AVX-512): one partial block, whole ones, whole and partial,
// and around the groups of a copy of bfloat16 values (32 floats with AVX-512). With
// `rounding`, B's values are all float16 or bfloat16 values, which a copy of floats holds in 2
// bytes where the build reads them faster (PackedB::stores_halves, stores_bfloat16); the padding
// between rows is not copied, nor checked.
template <typename T>
void check_packed_rows(Rounding rounding) {
  struct Case {
    int64_t k, n, padding;
    Trans ta;
    Scalars scalars;
  };
  const Case cases[] = {{1, 1, 0, no, {1, 0}},        {37, 100, 3, no, {1, 0}},
                        {128, 512, 0, no, {1, 0}},    {32, 512, 5, yes, {-1.5, 1}},
                        {17, 1001, 0, no, {0.5, -2}}, {200, 257, 1, yes, {1, 0}},
                        {9, 47, 2, no, {2, 0.5}},     {5, 288, 0, no, {1, 1}}};
  Random rng(21);
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "K=" << c.k << " N=" << c.n << " ldb=N+" << c.padding);
    const Matrix<T> a(c.ta == yes ? c.k : 1, c.ta == yes ? 1 : c.k, 0, rng);
    Matrix<T> b(c.k, c.n, c.padding, rng);
    bool bfloat16_values = std::is_same_v<T, float> && PackedB::stores_bfloat16();
    bool half_values = std::is_same_v<T, float> && PackedB::stores_halves();
    for (int64_t i = 0; i < c.k; ++i)
      for (int64_t j = 0; j < c.n; ++j) {
        T& value = b.at(i, j);
        value = rounded(value, rounding);
        bfloat16_values = bfloat16_values && value == rounded(value, Rounding::bfloat16);
        half_values = half_values && value == rounded(value, Rounding::float16);
      }
    const Matrix<T> c0(1, c.n, 0, rng);
    const Matrix<T> bias(1, c.n, 0, rng);
    const auto multiply = [&](const T* row = nullptr) {
      std::vector<T> out = c0.data;
      gemm(c.ta, no, 1, c.n, c.k, static_cast<T>(c.scalars.alpha), a.data.data(), a.ld,
           b.data.data(), b.ld, static_cast<T>(c.scalars.beta), out.data(), c.n, row);
      return out;
    };
    const std::vector<T> in_place = multiply();
    std::vector<T> plus_bias = in_place;  // a bias row is added as an add after the product would
    for (int64_t j = 0; j < c.n; ++j) plus_bias[j] += bias.at(0, j);
    EXPECT_EQ(multiply(bias.data.data()), plus_bias);
    const PackedB packed(b.data.data(), c.k, c.n, b.ld);
    const bool halves = !bfloat16_values && half_values;
    EXPECT_EQ(packed.holds_bfloat16(), bfloat16_values);
    EXPECT_EQ(packed.holds_halves(), halves);
    if (bfloat16_values) {
      // Each row of the last block padded to whole groups: under 32 values of 2 bytes.
      EXPECT_GE(packed.bytes(), c.k * c.n * 2);
      EXPECT_LT(packed.bytes(), c.k * (c.n + 32) * 2);
    } else {
      EXPECT_EQ(packed.bytes(), c.k * c.n * static_cast<int64_t>(halves ? 2 : sizeof(T)));
    }
    const PackedB* copies[] = {&packed};
    {
      const PackedBScope scope(copies);
      EXPECT_EQ(multiply(), in_place);
      EXPECT_EQ(multiply(bias.data.data()), plus_bias);
      // What the scope's products read is the copy: B changed since is not seen.
      std::fill(b.data.begin(), b.data.end(), T(3));
      EXPECT_EQ(multiply(), in_place);
    }
    EXPECT_NE(multiply(), in_place);  // outside the scope, B itself
  }
}

TEST(Gemm, FloatRowProductsFromPackedB) { check_packed_rows<float>(Rounding::none); }

TEST(Gemm, FloatRowProductsFromPackedHalves) { check_packed_rows<float>(Rounding::float16); }

TEST(Gemm, FloatRowProductsFromPackedBfloat16) { check_packed_rows<float>(Rounding::bfloat16); }

TEST(Gemm, DoubleRowProductsFromPackedB) { check_packed_rows<double>(Rounding::none); }

TEST(Gemm, DoublesOfRoundedValuesArePackedAsDoubles) {
  check_packed_rows<double>(Rounding::float16);
  check_packed_rows<double>(Rounding::bfloat16);
}

// One value that is not a half (a bfloat16 value), wherever it is, keeps the whole copy in floats.
TEST(Gemm, PackedBHoldsTwoByteValuesOnlyWhereEveryValueIsOne) {
  for (const Rounding rounding : {Rounding::float16, Rounding::bfloat16}) {
    SCOPED_TRACE(rounding == Rounding::float16 ? "float16" : "bfloat16");
    Random rng(23);
    Matrix<float> b(40, 300, 0, rng);
    for (float& x : b.data) x = rounded(x, rounding);
    const auto holds = [&](const Matrix<float>& m) {
      const PackedB packed(m.data.data(), 40, 300, 300);
      return rounding == Rounding::float16 ? packed.holds_halves() : packed.holds_bfloat16();
    };
    EXPECT_EQ(holds(b), rounding == Rounding::bfloat16 ? PackedB::stores_bfloat16()
                                                       : PackedB::stores_halves());
    for (const auto& [row, col] : {std::pair<int64_t, int64_t>{0, 0}, {17, 263}, {39, 299}}) {
      Matrix<float> one_off = b;
      one_off.at(row, col) += 1e-4f;
      EXPECT_FALSE(holds(one_off)) << row << ", " << col;
    }
    if (rounding == Rounding::float16) {
      Matrix<float> large = b;
      large.at(5, 5) = 1e5f;  // beyond float16's range
      EXPECT_FALSE(holds(large));
    }
  }
}

// Inside the scope, only a single row times the very matrix the copy was made of reads it: not
// another K, N or row stride over the same address, not B transposed, not two rows.
TEST(Gemm, PackedBServesOnlyItsOwnMatrix) {
  Random rng(22);
  Matrix<float> b(64, 300, 0, rng);
  const PackedB packed(b.data.data(), 64, 300, 300);
  const PackedB* copies[] = {&packed};
  const PackedBScope scope(copies);
  std::fill(b.data.begin(), b.data.end(), 1.0f);  // so a product that reads B itself sees ones
  const std::vector<float> a(64 * 2, 1.0f);
  std::vector<float> c(600);
  const auto reads_b_itself = [&](Trans tb, int64_t m, int64_t n, int64_t k, int64_t ldb) {
    std::fill(c.begin(), c.end(), 0.0f);
    gemm(no, tb, m, n, k, 1.0f, a.data(), k, b.data.data(), ldb, 0.0f, c.data(), n);
    return std::all_of(c.begin(), c.begin() + m * n, [&](float x) { return x == float(k); });
  };
  EXPECT_FALSE(reads_b_itself(no, 1, 300, 64, 300));  // the copy
  EXPECT_TRUE(reads_b_itself(no, 1, 300, 63, 300));
  EXPECT_TRUE(reads_b_itself(no, 1, 299, 64, 300));
  EXPECT_TRUE(reads_b_itself(no, 1, 150, 64, 150));
  EXPECT_TRUE(reads_b_itself(yes, 1, 64, 64, 64));
  EXPECT_TRUE(reads_b_itself(no, 2, 300, 64, 300));
}

TEST(ParallelFor, CoversEveryIndexOnce) {
  ThreadPool pool(4);
  EXPECT_EQ(pool.num_threads(), 4);
  for (int64_t grain : {1, 3, 100, 1000}) {
    std::vector<std::atomic<int>> hits(1000);
    std::atomic<int64_t> sum{0};
    pool.parallel_for(5, 1000, grain, [&](int64_t lo, int64_t hi) {
      EXPECT_TRUE(ThreadPool::in_parallel_region());
      EXPECT_LT(lo, hi);
      for (int64_t i = lo; i < hi; ++i) {
        hits[static_cast<std::size_t>(i)]++;
        sum += i;
      }
    });
    for (int64_t i = 0; i < 1000; ++i) {
      EXPECT_EQ(hits[static_cast<std::size_t>(i)].load(), i >= 5 ? 1 : 0);
    }
    EXPECT_EQ(sum.load(), (5 + 999) * 995 / 2);
  }
  EXPECT_FALSE(ThreadPool::in_parallel_region());
}

TEST(ParallelFor, ChunksRespectGrainAndSmallRangesRunInline) {
  ThreadPool pool(3);
  std::atomic<int> chunks{0};
  pool.parallel_for(0, 10, 4, [&](int64_t lo, int64_t hi) {
    EXPECT_GE(hi - lo, 3);  // 10 split into at most ceil(10 / 4) = 3 balanced chunks
    ++chunks;
  });
  EXPECT_LE(chunks.load(), 3);

  const std::thread::id caller = std::this_thread::get_id();
  pool.parallel_for(0, 4, 4, [&](int64_t lo, int64_t hi) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    EXPECT_EQ(lo, 0);
    EXPECT_EQ(hi, 4);
  });
  bool called = false;
  pool.parallel_for(3, 3, 1, [&](int64_t, int64_t) { called = true; });
  EXPECT_FALSE(called);
  EXPECT_THROW(pool.parallel_for(0, 4, 0, [](int64_t, int64_t) {}), Error);
}

TEST(ParallelFor, RethrowsTheExceptionOfAChunk) {
  ThreadPool pool(2);
  for (int repeat = 0; repeat < 20; ++repeat) {
    EXPECT_THROW(pool.parallel_for(0, 100, 1,
                                   [](int64_t lo, int64_t hi) {
                                     if (lo <= 70 && 70 < hi) throw std::out_of_range("chunk 70");
                                   }),
                 std::out_of_range);
  }
  // The pool still works afterwards.
  std::atomic<int64_t> count{0};
  pool.parallel_for(0, 100, 1, [&](int64_t lo, int64_t hi) { count += hi - lo; });
  EXPECT_EQ(count.load(), 100);
}

TEST(ParallelFor, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  pool.parallel_for(0, 8, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const std::thread::id outer = std::this_thread::get_id();
      pool.parallel_for(0, 100, 1, [&](int64_t inner_lo, int64_t inner_hi) {
        EXPECT_EQ(std::this_thread::get_id(), outer);
        total += inner_hi - inner_lo;
      });
    }
  });
  EXPECT_EQ(total.load(), 800);
}

TEST(ParallelFor, ConcurrentCallersShareOnePool) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int repeat = 0; repeat < 50; ++repeat) {
        pool.parallel_for(0, 64, 1, [&](int64_t lo, int64_t hi) { total += hi - lo; });
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(total.load(), 4 * 50 * 64);
}

// Jobs a few microseconds apart (a recurrent step's products) reach workers that are still
// spinning, and jobs far apart reach workers that went to sleep: none is lost either way.
TEST(ParallelFor, BackToBackAndSpacedJobsAllRun) {
  ThreadPool pool(3);
  std::atomic<int64_t> count{0};
  for (int job = 0; job < 20000; ++job)
    pool.parallel_for(0, 3, 1, [&](int64_t lo, int64_t hi) { count += hi - lo; });
  EXPECT_EQ(count.load(), 3 * 20000);
  for (int job = 0; job < 3; ++job) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // past the workers' spin
    pool.parallel_for(0, 3, 1, [&](int64_t lo, int64_t hi) { count += hi - lo; });
  }
  EXPECT_EQ(count.load(), 3 * 20003);
}

// share's chunks follow from its arguments alone (ceil(length / grain) balanced chunks), on any
// pool, called from inside a parallel_for body or not; each index runs once, and the first
// exception a chunk throws comes back to the caller.
TEST(Share, ChunksFollowTheArgumentsAlone) {
  using Chunks = std::vector<std::pair<int64_t, int64_t>>;
  const auto expected = [](int64_t begin, int64_t end, int64_t grain) {
    const int64_t count = (end - begin - 1) / grain + 1;
    Chunks chunks;
    for (int64_t c = 0, lo = begin; c < count; ++c) {
      const int64_t size = (end - begin) / count + (c < (end - begin) % count ? 1 : 0);
      chunks.emplace_back(lo, lo + size);
      lo += size;
    }
    return chunks;
  };
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (bool nested : {false, true}) {
      for (const auto& [begin, end, grain] : {std::tuple<int64_t, int64_t, int64_t>{0, 10, 3},
                                              {5, 6, 1},
                                              {-4, 100, 7},
                                              {0, 64, 64},
                                              {0, 1000, 1}}) {
        SCOPED_TRACE(testing::Message() << threads << " threads, nested " << nested << ", ["
                                        << begin << ", " << end << ") by " << grain);
        std::mutex mutex;
        Chunks seen;
        const auto share = [&] {
          pool.share(begin, end, grain, [&](int64_t lo, int64_t hi) {
            EXPECT_TRUE(ThreadPool::in_parallel_region());
            std::lock_guard lock(mutex);
            seen.emplace_back(lo, hi);
          });
        };
        if (nested)
          pool.parallel_for(0, 1, 1, [&](int64_t, int64_t) { share(); });
        else
          share();
        std::sort(seen.begin(), seen.end());
        EXPECT_EQ(seen, expected(begin, end, grain));
      }
    }
    bool called = false;
    pool.share(3, 3, 1, [&](int64_t, int64_t) { called = true; });
    EXPECT_FALSE(called);
    EXPECT_THROW(pool.share(0, 4, 0, [](int64_t, int64_t) {}), Error);
    EXPECT_THROW(pool.share(0, 100, 1,
                            [](int64_t lo, int64_t) {
                              if (lo == 70) throw std::out_of_range("chunk 70");
                            }),
                 std::out_of_range);
  }
}

// The two halves of a batch: when one chunk of a parallel_for is done, its thread takes chunks
// of a share call that the other chunk makes. The sharing chunk's own chunks wait for a helper
// (for at most a minute), so the test does not depend on how fast the other thread arrives.
TEST(Share, AThreadDoneWithItsChunkTakesChunksOfAnothersShare) {
  ThreadPool pool(2);
  for (int repeat = 0; repeat < 20; ++repeat) {
    std::atomic<int> by_helper{0};
    std::vector<std::atomic<int>> runs(16);
    pool.parallel_for(0, 2, 1, [&](int64_t lo, int64_t) {
      if (lo != 0) return;  // done at once: its thread is idle while chunk 0 shares
      const std::thread::id owner = std::this_thread::get_id();
      pool.share(0, 16, 1, [&](int64_t first, int64_t) {
        ++runs[static_cast<std::size_t>(first)];
        if (std::this_thread::get_id() != owner) {
          ++by_helper;
          return;
        }
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
        while (by_helper == 0 && std::chrono::steady_clock::now() < deadline)
          std::this_thread::yield();
      });
    });
    EXPECT_GT(by_helper.load(), 0);
    for (const std::atomic<int>& count : runs) EXPECT_EQ(count.load(), 1);
  }
}

TEST(ParallelFor, SetNumThreadsReplacesTheDefaultPool) {
  const int before = default_thread_pool().num_threads();
  for (int threads : {1, 3, 2}) {
    set_num_threads(threads);
    EXPECT_EQ(default_thread_pool().num_threads(), threads);
    std::atomic<int64_t> count{0};
    parallel_for(0, 100, 1, [&](int64_t lo, int64_t hi) { count += hi - lo; });
    EXPECT_EQ(count.load(), 100);
  }
  EXPECT_THROW(set_num_threads(0), Error);
  EXPECT_THROW(parallel_for(0, 2, 1, [](int64_t, int64_t) { set_num_threads(1); }), Error);
  set_num_threads(before);
}

TEST(ParallelFor, PoolsStartAndStopCleanly) {
  for (int threads = 1; threads <= 4; ++threads) {
    ThreadPool pool(threads);
    std::atomic<int64_t> count{0};
    pool.parallel_for(0, 1000, 10, [&](int64_t lo, int64_t hi) { count += hi - lo; });
    EXPECT_EQ(count.load(), 1000);
  }
  EXPECT_THROW(ThreadPool(0), Error);
  EXPECT_GE(default_thread_pool().num_threads(), 1);
  std::atomic<int64_t> count{0};
  parallel_for(0, 10, 1, [&](int64_t lo, int64_t hi) { count += hi - lo; });
  EXPECT_EQ(count.load(), 10);
}

}  // namespace
}  // namespace weft
