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

// The constants of exp, shared with the JIT's lowering (ops/lowering.cpp), which
// emits the same operations in the same order, so compiled and eager code agree bit for bit (the
// eager kernels, ops/elementwise.cpp, are compiled without FMA contraction: CMakeLists.txt).
inline constexpr float kExpLow = -87.3f;  // exp(kExpLow) is the smallest normal float
inline constexpr float kExpHigh = 88.7f;  // above it, exp overflows
inline constexpr float kLog2e = 1.44269504088896341f;
// Adding 1.5 * 2^23 + 127 to x / ln2 (in [-126, 128] once x is clamped) rounds it to an integer
// n, which unlike roundevenf gcc vectorises, and leaves n + 127, the biased exponent of 2^n, in
// the sum's low bits; subtracting it again gives n.
inline constexpr float kRoundMagic = 12582912.0f + 127;
inline constexpr float kLn2High = 0.693359375f;  // ln2 split in two, for an exact reduction
inline constexpr float kLn2Low = 2.12194440e-4f;
// exp(r) - 1 - r = r^2 (c0 r^5 + c1 r^4 + ... + c5), Cephes expf.
inline constexpr float kExpPoly[] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                     4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

// exp(x) = 2^n (1 + q) with r = x - n ln2 in [-ln2/2, ln2/2] and q = exp(r) - 1 by a degree-6
// polynomial; returned as the scale 2^n and q, which also give expm1(x) = 2^n q + (2^n - 1)
// without cancellation near 0 (n = 0 there). Below kExpLow, x is taken as kExpLow (the
// smallest normal float, where libm would return denormals, then 0). Above about 88.38, n = 128
// and the scale's bits are +inf's: exp overflows without a select.
struct ExpParts {
  float scale;
  float q;
};
inline ExpParts exp_parts(float x) {
  // Each select compares the value it returns, so both become min/max instructions.
  x = x > kExpHigh ? kExpHigh : x;
  x = x < kExpLow ? kExpLow : x;
  const float rounded = mul_add(x, kLog2e, kRoundMagic);
  const float n = rounded - kRoundMagic;
  const float r = mul_add(n, kLn2Low, mul_add(-n, kLn2High, x));
  // Horner's rule written out: GCC vectorises a loop over elements that calls exp only without
  // a loop inside, and it does not unroll this one first (an eager sigmoid ran scalar).
  float p = mul_add(kExpPoly[0], r, kExpPoly[1]);
  p = mul_add(p, r, kExpPoly[2]);
  p = mul_add(p, r, kExpPoly[3]);
  p = mul_add(p, r, kExpPoly[4]);
  p = mul_add(p, r, kExpPoly[5]);
  return {std::bit_cast<float>(std::bit_cast<uint32_t>(rounded) << 23), mul_add(p * r, r, r)};
}

inline float exp(float x) {
  const auto [scale, q] = exp_parts(x);
  return (q + 1.0f) * scale;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp(-x)); }

// tanh(x) = sign(x) m / (2 - m) with m = -expm1(-2|x|), which keeps its precision near 0.
inline float tanh(float x) {
  const auto [scale, q] = exp_parts(-2.0f * std::fabs(x));
  const float m = mul_add(-scale, q, 1.0f - scale);
  return std::copysign(m / (2.0f - m), x);
}

}  // namespace fused or unfused
}  // namespace weft::fast
