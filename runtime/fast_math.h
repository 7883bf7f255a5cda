// Branch-free float32 exp, sigmoid and tanh that compilers vectorise (libm's scalar calls stop
// the vectoriser). Accuracy: a few ulp. float64 callers keep libm: gradient checks and reference
// comparisons need its precision more than its speed.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace weft::fast {

// Whether the polynomials below multiply-add in one rounding (std::fma), where the build targets
// FMA instructions: one instruction instead of two, and a third fewer in each exp. The JIT emits
// llvm.fma exactly where mul_add does, so eager and compiled code still agree bit for bit; built
// without FMA (WEFT_NATIVE_ARCH=OFF), both multiply, then add, as std::fma would be a libm call.
// The two kinds are different functions (an inline namespace each), so a program compiled
// without FMA that includes this header never lends its versions to the library's kernels, as
// one definition of an inline function would (a Debug build calls them rather than inline them).
#if defined(__FMA__) || defined(__aarch64__)
inline namespace fused {
inline constexpr bool kFusedMultiplyAdd = true;
#else
inline namespace unfused {
inline constexpr bool kFusedMultiplyAdd = false;
#endif

inline float mul_add(float a, float b, float c) {
  if constexpr (kFusedMultiplyAdd) return std::fma(a, b, c);
  return a * b + c;
}
inline double mul_add(double a, double b, double c) {
  if constexpr (kFusedMultiplyAdd) return std::fma(a, b, c);
  return a * b + c;
}

// The constants of exp and tanh, shared with the JIT's lowering (ops/lowering.cpp), which
// emits the same operations in the same order, so compiled and eager code agree bit for bit (the
// eager kernels, ops/elementwise.cpp, are compiled without FMA contraction: CMakeLists.txt).
inline constexpr float kExpLow = -87.3f;  // exp(kExpLow) is the smallest normal float
inline constexpr float kExpHigh = 88.7f;  // above it, exp overflows
inline constexpr float kLog2e = 1.44269504088896341f;
// Adding and removing 1.5 * 2^23 rounds to nearest (exact for |x / ln2| < 2^22); unlike
// roundevenf, gcc vectorises it.
inline constexpr float kRoundMagic = 12582912.0f;
inline constexpr float kLn2High = 0.693359375f;  // ln2 split in two, for an exact reduction
inline constexpr float kLn2Low = 2.12194440e-4f;
// exp(r) - 1 - r = r^2 (c0 r^5 + c1 r^4 + ... + c5), Cephes expf.
inline constexpr float kExpPoly[] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                     4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
// Below this |x|, tanh uses x (1 + s0 x^2 + s1 x^4 + s2 x^6) instead of exp.
inline constexpr float kTanhSeriesBelow = 0.0625f;
inline constexpr float kTanhSeries[] = {-1.0f / 3, 2.0f / 15, -17.0f / 315};

// exp(x) = 2^n * exp(r), r = x - n ln2 in [-ln2/2, ln2/2], exp(r) by a degree-6 polynomial.
// Below kExpLow it returns exp(kExpLow), the smallest normal float (libm would return
// denormals, then 0); above kExpHigh, +inf.
inline float exp(float x) {
  x = x < kExpLow ? kExpLow : x > kExpHigh ? kExpHigh : x;
  const float n = mul_add(x, kLog2e, kRoundMagic) - kRoundMagic;
  const float r = mul_add(n, kLn2Low, mul_add(-n, kLn2High, x));
  // Horner's rule written out: GCC vectorises a loop over elements that calls exp only without
  // a loop inside, and it does not unroll this one first (an eager sigmoid ran scalar).
  float p = mul_add(kExpPoly[0], r, kExpPoly[1]);
  p = mul_add(p, r, kExpPoly[2]);
  p = mul_add(p, r, kExpPoly[3]);
  p = mul_add(p, r, kExpPoly[4]);
  p = mul_add(p, r, kExpPoly[5]);
  p = mul_add(p * r, r, r) + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  const float scale = std::bit_cast<float>(bits);
  return x >= kExpHigh ? __builtin_inff() : p * scale;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp(-x)); }

// tanh(x) = sign(x) (1 - e) / (1 + e) with e = exp(-2|x|); near 0 an odd Taylor polynomial
// avoids the cancellation in 1 - e.
inline float tanh(float x) {
  const float a = x < 0 ? -x : x;
  const float e = exp(-2.0f * a);
  const float large = (1.0f - e) / (1.0f + e);
  const float x2 = x * x;
  float series = mul_add(x2, kTanhSeries[2], kTanhSeries[1]);
  series = mul_add(x2, series, kTanhSeries[0]);
  const float small = a * mul_add(x2, series, 1.0f);
  const float t = a < kTanhSeriesBelow ? small : large;
  return x < 0 ? -t : t;
}

}  // namespace fused or unfused
}  // namespace weft::fast
