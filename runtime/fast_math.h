// Branch-free float32 exp, sigmoid and tanh that compilers vectorise (libm's scalar calls stop
// the vectoriser). Accuracy: a few ulp. float64 callers keep libm: gradient checks and reference
// comparisons need its precision more than its speed.
#pragma once

#include <bit>
#include <cstdint>

namespace weft::fast {

// exp(x) = 2^n * exp(r), r = x - n ln2 in [-ln2/2, ln2/2], exp(r) by a degree-6 polynomial
// (Cephes expf coefficients). Below -87.3 it returns exp(-87.3), the smallest normal float
// (libm would return denormals, then 0); above 88.7, +inf.
inline float exp(float x) {
  x = x < -87.3f ? -87.3f : x > 88.7f ? 88.7f : x;
  // Round to nearest by adding and removing 1.5 * 2^23 (exact for |x / ln2| < 2^22); unlike
  // roundevenf, gcc vectorises it.
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;  // ln2 split for exactness
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  const float scale = std::bit_cast<float>(bits);
  return x >= 88.7f ? __builtin_inff() : p * scale;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp(-x)); }

// tanh(x) = sign(x) (1 - e) / (1 + e) with e = exp(-2|x|); near 0 an odd Taylor polynomial
// avoids the cancellation in 1 - e.
inline float tanh(float x) {
  const float a = x < 0 ? -x : x;
  const float e = exp(-2.0f * a);
  const float large = (1.0f - e) / (1.0f + e);
  const float x2 = x * x;
  const float small = a * (1.0f + x2 * (-1.0f / 3 + x2 * (2.0f / 15 + x2 * (-17.0f / 315))));
  const float t = a < 0.0625f ? small : large;
  return x < 0 ? -t : t;
}

}  // namespace weft::fast
