// Counter-based random numbers: value i of a stream is a pure function of (seed, i), so eager
// kernels and compiled code draw identical dropout masks and initial weights from the same seed.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

namespace weft {

// SplitMix64's output function applied to the counter: a strong 64-bit mix, cheap enough to
// inline into generated code.
constexpr uint64_t random_bits(uint64_t seed, uint64_t counter) {
  uint64_t z = seed + (counter + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The 53 random bits of a uniform draw.
constexpr uint64_t random_fraction_bits(uint64_t seed, uint64_t counter) {
  return random_bits(seed, counter) >> 11;
}

// Uniform in [0, 1) with 53 random bits.
constexpr double random_uniform(uint64_t seed, uint64_t counter) {
  return static_cast<double>(random_fraction_bits(seed, counter)) * 0x1.0p-53;
}

// The least random_fraction_bits whose random_uniform is >= p, for p in [0, 1]:
// random_uniform(s, c) >= p exactly when random_fraction_bits(s, c) >= least_fraction_bits_at(p),
// as scaling by 2^53 is exact. An integer comparison draws the same decisions without converting
// 64-bit integers to double, which CPUs without AVX-512 do one element at a time.
inline uint64_t least_fraction_bits_at(double p) {
  return static_cast<uint64_t>(std::ceil(p * 0x1.0p53));
}

// Standard normal by Box-Muller from draws 2i and 2i+1.
inline double random_normal(uint64_t seed, uint64_t counter) {
  const double u1 = 1.0 - random_uniform(seed, 2 * counter);  // in (0, 1]: log is finite
  const double u2 = random_uniform(seed, 2 * counter + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

// A seeded stream: each draw of n numbers takes the next n counters.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  // Reserves n counters and returns the first.
  uint64_t take(uint64_t n) {
    const uint64_t first = offset_;
    offset_ += n;
    return first;
  }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// The process-wide generator used when none is passed; manual_seed resets it.
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace weft
