// Tensor basics: factories, random streams and dropout masks, conversions, printing, allclose,
// copies, views sharing storage, and storage versions.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "weft/autodiff/tape.h"
#include "weft/ops/ops.h"
#include "weft/runtime/environment.h"
#include "weft/runtime/storage.h"
#include "weft/runtime/thread_pool.h"

namespace weft {
namespace {

using Values = std::vector<double>;

uint64_t version(const Tensor& t) { return t.impl()->storage->version(); }

// ---- Factories ----------------------------------------------------------------------------------

struct FactoryRow {
  std::string name;
  std::function<Tensor()> make;
  Shape shape;
  DType dtype;
  Values values;
};

void PrintTo(const FactoryRow& row, std::ostream* os) { *os << row.name; }

std::vector<FactoryRow> factory_rows() {
  return {
      {"zeros",
       [] {
         return zeros({2, 3});
       },
       {2, 3},
       DType::f32,
       Values(6, 0)},
      {"zeros_f64", [] { return zeros({2}, {.dtype = DType::f64}); }, {2}, DType::f64, {0, 0}},
      {"zeros_0d", [] { return zeros({}); }, {}, DType::f32, {0}},
      {"zeros_empty",
       [] {
         return zeros({0, 3});
       },
       {0, 3},
       DType::f32,
       {}},
      {"ones_i32", [] { return ones({3}, {.dtype = DType::i32}); }, {3}, DType::i32, {1, 1, 1}},
      {"full_f64",
       [] { return full({2}, 2.5, {.dtype = DType::f64}); },
       {2},
       DType::f64,
       {2.5, 2.5}},
      {"full_i64_truncates",
       [] { return full({3}, 2.7, {.dtype = DType::i64}); },
       {3},
       DType::i64,
       {2, 2, 2}},
      {"scalar", [] { return scalar(3.5); }, {}, DType::f32, {3.5}},
      {"scalar_i32", [] { return scalar(-4, DType::i32); }, {}, DType::i32, {-4}},
      {"zeros_like",
       [] {
         return zeros_like(full({2, 1}, 9, {.dtype = DType::i32}));
       },
       {2, 1},
       DType::i32,
       {0, 0}},
      {"ones_like",
       [] { return ones_like(zeros({2}, {.dtype = DType::f64})); },
       {2},
       DType::f64,
       {1, 1}},
      {"arange", [] { return arange(4); }, {4}, DType::i64, {0, 1, 2, 3}},
      {"arange_f32", [] { return arange(3, {.dtype = DType::f32}); }, {3}, DType::f32, {0, 1, 2}},
      {"arange_empty", [] { return arange(0); }, {0}, DType::i64, {}},
      {"tensor_1d",
       [] {
         return tensor({1, 2, 3});
       },
       {3},
       DType::f32,
       {1, 2, 3}},
      {"tensor_2d",
       [] {
         return tensor({1, 2, 3, 4, 5, 6}, {3, 2});
       },
       {3, 2},
       DType::f32,
       {1, 2, 3, 4, 5, 6}},
      {"tensor_f64_keeps_precision",
       [] {
         return tensor({0.1, 1e-300}, {}, {.dtype = DType::f64});
       },
       {2},
       DType::f64,
       {0.1, 1e-300}},
      {"tensor_i32_truncates",
       [] {
         return tensor({1.9, -1.9}, {}, {.dtype = DType::i32});
       },
       {2},
       DType::i32,
       {1, -1}},
      {"tensor_from_a_vector",
       [] {
         return tensor(Values{4, 5}, {2, 1});
       },
       {2, 1},
       DType::f32,
       {4, 5}},
      {"from_vector_float",
       [] {
         return from_vector(std::vector<float>{1.5f, 2, 3, 4}, {2, 2});
       },
       {2, 2},
       DType::f32,
       {1.5, 2, 3, 4}},
      {"from_vector_double_0d", [] { return from_vector(Values{7}, {}); }, {}, DType::f64, {7}},
      {"from_vector_i32",
       [] {
         return from_vector(std::vector<int32_t>{-1, 2}, {2});
       },
       {2},
       DType::i32,
       {-1, 2}},
      {"from_vector_i64",
       [] {
         return from_vector(std::vector<int64_t>{int64_t{1} << 40, -3}, {2});
       },
       {2},
       DType::i64,
       {1099511627776.0, -3}},
      {"to_dtype_truncates",
       [] {
         return to_dtype(tensor({1.5, -1.5, 2.99}), DType::i64);
       },
       {3},
       DType::i64,
       {1, -1, 2}},
      {"to_dtype_widens",
       [] { return to_dtype(arange(2, {.dtype = DType::i32}), DType::f64); },
       {2},
       DType::f64,
       {0, 1}},
  };
}

class Factory : public ::testing::TestWithParam<FactoryRow> {};

TEST_P(Factory, MakesTheShapeDtypeAndValues) {
  const FactoryRow& row = GetParam();
  const Tensor t = row.make();
  EXPECT_EQ(t.shape(), row.shape);
  EXPECT_EQ(t.dtype(), row.dtype);
  EXPECT_EQ(t.numel(), static_cast<int64_t>(row.values.size()));
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.strides(), contiguous_strides(row.shape));
  EXPECT_FALSE(t.requires_grad());
  EXPECT_TRUE(t.is_leaf());
  EXPECT_EQ(t.to_vector<double>(), row.values);
}

INSTANTIATE_TEST_SUITE_P(Tensors, Factory, ::testing::ValuesIn(factory_rows()),
                         [](const auto& test) { return test.param.name; });

TEST(FactoryEmpty, HasTheShapeAndDtypeButUnspecifiedValues) {
  const Tensor t = empty({2, 3}, {.dtype = DType::i32});
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.dtype(), DType::i32);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(empty({0}).numel(), 0);
}

// Kernels load whole cache lines and AVX-512 registers: every buffer starts on one and owns
// the lines it touches (the sanitizer build checks the writes past the end here).
TEST(StorageAllocate, IsAlignedToACacheLineAndZeroFilledOnRequest) {
  for (const size_t bytes : {0, 1, 4, 63, 64, 65, 1000, 4096, 100000, 3 << 20}) {
    for (const bool zero_fill : {false, true}) {
      const auto storage = Storage::allocate(bytes, zero_fill);
      const auto* data = static_cast<unsigned char*>(storage->data());
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(data) % Storage::alignment, 0u) << bytes;
      EXPECT_EQ(storage->bytes(), bytes);
      const size_t lines = bytes / Storage::alignment + 1;
      if (zero_fill) {
        EXPECT_TRUE(std::all_of(data, data + lines * Storage::alignment, [](unsigned char byte) {
          return byte == 0;
        })) << bytes;
      }
      std::fill_n(static_cast<unsigned char*>(storage->data()), lines * Storage::alignment, 0xab);
    }
  }
}

// ---- The buffer cache -------------------------------------------------------------------------

// Each test starts from the default limit, whatever WEFT_BUFFER_CACHE_MB says, and the process's
// limit is restored after it.
class BufferCache : public testing::Test {
 protected:
  void SetUp() override { set_buffer_cache_limit(int64_t{1} << 30); }
  void TearDown() override { set_buffer_cache_limit(limit_); }
  const int64_t limit_ = buffer_cache_stats().limit_bytes;
};

TEST_F(BufferCache, GivesAFreedBufferToTheNextTensorOfItsSizeClass) {
  // A page and a bit, a malloc-sized buffer, and one on huge pages.
  for (const size_t bytes : {5000, 100000, 3 << 20}) {
    void* freed = Storage::allocate(bytes, false)->data();  // freed at once, and kept
    const BufferCacheStats before = buffer_cache_stats();
    EXPECT_GT(before.cached_bytes, 0);
    const auto again = Storage::allocate(bytes, true);
    EXPECT_EQ(again->data(), freed) << bytes;
    EXPECT_EQ(buffer_cache_stats().hits, before.hits + 1) << bytes;
    EXPECT_LT(buffer_cache_stats().cached_bytes, before.cached_bytes) << bytes;
    const auto* data = static_cast<const unsigned char*>(again->data());
    EXPECT_TRUE(std::all_of(data, data + bytes, [](unsigned char byte) { return byte == 0; }))
        << bytes << ": zero_fill on a buffer used before";
  }
  // Sizes within an eighth share a class; twice the size is another.
  void* freed = Storage::allocate(100000, false)->data();
  EXPECT_EQ(Storage::allocate(99000, false)->data(), freed);
  EXPECT_NE(Storage::allocate(200000, false)->data(), freed);
}

TEST_F(BufferCache, KeepsNoMoreThanItsLimit) {
  release_cached_buffers();
  EXPECT_EQ(buffer_cache_stats().cached_bytes, 0);
  set_buffer_cache_limit(150000);
  std::vector<std::shared_ptr<Storage>> held;
  for (int i = 0; i < 4; ++i) held.push_back(Storage::allocate(60000, false));
  held.clear();  // the third and fourth no longer fit
  EXPECT_LE(buffer_cache_stats().cached_bytes, 150000);
  EXPECT_GT(buffer_cache_stats().cached_bytes, 100000);
  set_buffer_cache_limit(0);  // frees what it kept, and keeps nothing more
  EXPECT_EQ(buffer_cache_stats().cached_bytes, 0);
  const BufferCacheStats before = buffer_cache_stats();
  const auto uncached = Storage::allocate(60000, true);  // from malloc, as every size now
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(uncached->data()) % Storage::alignment, 0u);
  const auto* data = static_cast<const unsigned char*>(uncached->data());
  EXPECT_TRUE(std::all_of(data, data + 60000, [](unsigned char byte) { return byte == 0; }));
  EXPECT_EQ(buffer_cache_stats().misses, before.misses);
  EXPECT_EQ(buffer_cache_stats().hits, before.hits);
  Storage::allocate(60000, false);
  EXPECT_EQ(buffer_cache_stats().cached_bytes, 0);
  EXPECT_THROW(set_buffer_cache_limit(-1), Error);
}

TEST_F(BufferCache, MakesRoomByFreeingTheClassUsedLongestAgo) {
  release_cached_buffers();
  set_buffer_cache_limit(200000);
  Storage::allocate(100000, false);  // kept: 104 KiB
  {
    const auto first = Storage::allocate(60000, false);
    const auto second = Storage::allocate(60000, false);
  }  // 60 KiB twice: the second makes room by freeing the older class
  EXPECT_EQ(buffer_cache_stats().cached_bytes, 2 * 61440);
  const BufferCacheStats before = buffer_cache_stats();
  Storage::allocate(60000, false);
  EXPECT_EQ(buffer_cache_stats().hits, before.hits + 1);
  Storage::allocate(100000, false);
  EXPECT_EQ(buffer_cache_stats().misses, before.misses + 1);
}

TEST_F(BufferCache, GivesEveryTensorItsOwnBufferWhenAStepOutgrowsTheLimit) {
  // 20 tensors of 60 KiB live at once under a limit of 200 KB, five times over: the cache frees
  // what it cannot keep, and then serves those sizes from malloc's heap; every buffer goes back
  // where it came from (AddressSanitizer checks the frees).
  release_cached_buffers();
  set_buffer_cache_limit(200000);
  for (int round = 0; round < 5; ++round) {
    std::vector<Tensor> live;
    for (int i = 0; i < 20; ++i)
      live.push_back(full({15000 + i}, static_cast<double>(round * 100 + i)));
    for (int i = 0; i < 20; ++i) {
      const Tensor& tensor = live[static_cast<size_t>(i)];
      EXPECT_EQ(tensor.data<float>()[0], static_cast<float>(round * 100 + i));
      EXPECT_EQ(tensor.data<float>()[tensor.numel() - 1], static_cast<float>(round * 100 + i));
    }
  }
  EXPECT_LE(buffer_cache_stats().cached_bytes, 200000);
  release_cached_buffers();
  EXPECT_EQ(buffer_cache_stats().cached_bytes, 0);
}

TEST_F(BufferCache, ServesThreadsAtOnce) {
  // Every tensor keeps its own values while others come and go on the other threads.
  std::atomic<int> wrong{0};
  ThreadPool pool(4);
  pool.parallel_for(0, 4, 1, [&](int64_t begin, int64_t end) {
    for (int64_t thread = begin; thread < end; ++thread) {
      std::vector<Tensor> live;
      for (int i = 0; i < 200; ++i) {
        const int64_t size = 1000 + (i * 7919 + thread * 104729) % 300000;
        live.push_back(full({size}, static_cast<double>(thread * 1000 + i)));
        if (live.size() > 8) {
          const Tensor& oldest = live.front();
          const float expected = oldest.data<float>()[0];
          for (int64_t j = 0; j < oldest.numel(); j += 997)
            if (oldest.data<float>()[j] != expected) ++wrong;
          live.erase(live.begin());
        }
      }
    }
  });
  EXPECT_EQ(wrong, 0);
}

// Lines of /proc/self/maps (the process's mappings), and resident bytes from /proc/self/statm.
int64_t mapping_count() {
  std::ifstream maps("/proc/self/maps");
  int64_t lines = 0;
  for (std::string line; std::getline(maps, line);) ++lines;
  return lines;
}
int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * 4096;
}

TEST_F(BufferCache, GivesPagesBackWithoutSplittingTheProcesssMappings) {
  release_cached_buffers();
  const int64_t mappings = mapping_count(), resident = resident_bytes();
  // A mapping per buffer would leave a thousand after the first release; a few more may come
  // from elsewhere (the arena's next region, the vectors below, AddressSanitizer's allocator).
  const int64_t most_mappings = mappings + 50;
  // Two classes interleaved, so that freeing one leaves holes between the other's buffers.
  std::vector<std::shared_ptr<Storage>> first, second;
  int64_t held_bytes = 0;
  for (int i = 0; i < 1000; ++i) {
    first.push_back(Storage::allocate(61000, true));
    second.push_back(Storage::allocate(30000, true));
    held_bytes += 61000 + 30000;
  }
  const int64_t resident_held = resident_bytes();
  EXPECT_GE(resident_held - resident, held_bytes * 9 / 10);
  first.clear();
  release_cached_buffers();  // every other buffer's pages go back
  EXPECT_LE(mapping_count(), most_mappings) << "a mapping per buffer, split by the frees";
  second.clear();
  release_cached_buffers();
  EXPECT_GE(resident_held - resident_bytes(), held_bytes / 2) << "pages not given back";
  // The freed address ranges serve the next buffers of their classes.
  const BufferCacheStats before = buffer_cache_stats();
  const auto again = Storage::allocate(61000, true);
  EXPECT_EQ(buffer_cache_stats().misses, before.misses + 1);
  EXPECT_LE(mapping_count(), most_mappings);
  const auto* data = static_cast<const unsigned char*>(again->data());
  EXPECT_TRUE(std::all_of(data, data + 61000, [](unsigned char byte) { return byte == 0; }));
}

// ---- Settings from the environment ----------------------------------------------------------

struct EnvironmentRow {
  std::string name;
  const char* value;                // null: unset
  std::optional<int64_t> expected;  // none: unset or empty; the error otherwise below
  bool throws;
};

TEST(EnvironmentInteger, ReadsAnIntegerInRangeAndNamesTheVariableOtherwise) {
  const std::vector<EnvironmentRow> rows = {
      {"unset", nullptr, std::nullopt, false},
      {"empty", "", std::nullopt, false},
      {"lowest", "0", 0, false},
      {"highest", "16", 16, false},
      {"below", "-1", std::nullopt, true},
      {"above", "17", std::nullopt, true},
      {"trailing text", "4x", std::nullopt, true},
      {"not a number", "all", std::nullopt, true},
      {"overflow", "99999999999999999999", std::nullopt, true},
  };
  constexpr const char* variable = "WEFT_TEST_ENVIRONMENT_INTEGER";
  for (const EnvironmentRow& row : rows) {
    if (row.value == nullptr)
      unsetenv(variable);
    else
      setenv(variable, row.value, 1);
    if (row.throws) {
      try {
        environment_integer(variable, 0, 16);
        ADD_FAILURE() << row.name << ": no error";
      } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find(variable), std::string::npos) << row.name;
        EXPECT_NE(std::string(error.what()).find(row.value), std::string::npos) << row.name;
      }
    } else {
      EXPECT_EQ(environment_integer(variable, 0, 16), row.expected) << row.name;
    }
  }
  unsetenv(variable);
}

TEST(FactoryOptions, EveryFactoryHonoursRequiresGrad) {
  const TensorOptions options{.dtype = DType::f64, .requires_grad = true};
  Generator generator(1);
  const std::vector<std::pair<std::string, Tensor>> made = {
      {"empty", empty({2}, options)},
      {"zeros", zeros({2}, options)},
      {"ones", ones({2}, options)},
      {"full", full({2}, 3, options)},
      {"randn", randn({2}, options, generator)},
      {"uniform", uniform({2}, 0, 1, options, generator)},
      {"arange", arange(2, options)},
      {"tensor", tensor({1, 2}, {}, options)},
      {"from_vector", from_vector(Values{1, 2}, {2}, true)},
  };
  for (const auto& [name, t] : made) {
    EXPECT_TRUE(t.requires_grad()) << name;
    EXPECT_TRUE(t.is_leaf()) << name;
    EXPECT_EQ(t.dtype(), DType::f64) << name;
  }
}

// ---- Random streams -----------------------------------------------------------------------------

TEST(RandomStreams, RandnIsDeterministicForAGeneratorSeed) {
  Generator first(42), second(42), other(43);
  const Tensor a = randn({4, 5}, {}, first);
  const Tensor b = randn({4, 5}, {}, second);
  const Tensor c = randn({4, 5}, {}, other);
  EXPECT_EQ(a.shape(), (Shape{4, 5}));
  EXPECT_EQ(a.dtype(), DType::f32);
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  EXPECT_NE(a.to_vector<float>(), c.to_vector<float>());
  // The stream moves on: a second draw from the same generator is new.
  EXPECT_NE(randn({4, 5}, {}, first).to_vector<float>(), a.to_vector<float>());
  EXPECT_EQ(first.offset(), 40u);
}

TEST(RandomStreams, DrawsDoNotDependOnHowTheyAreSplit) {
  Generator whole(7), parts(7);
  const Values all = randn({6}, {.dtype = DType::f64}, whole).to_vector<double>();
  Values pieces = randn({2}, {.dtype = DType::f64}, parts).to_vector<double>();
  const Values rest = randn({2, 2}, {.dtype = DType::f64}, parts).to_vector<double>();
  pieces.insert(pieces.end(), rest.begin(), rest.end());
  EXPECT_EQ(all, pieces);
}

// dropout_mask compares random_fraction_bits with least_fraction_bits_at(rate), eager and compiled;
// that must keep exactly the draws whose random_uniform is >= rate.
TEST(RandomStreams, LeastFractionBitsDecideAsTheUniformDraws) {
  const double rates[] = {0.0, 0x1p-60, 0x1p-53,     1e-9,     0.2, 0.25,
                          0.3, 0.5,     1 - 0x1p-53, 0.999999, 1.0};
  for (const double rate : rates) {
    SCOPED_TRACE(testing::Message() << "rate " << rate);
    const uint64_t least = least_fraction_bits_at(rate);
    ASSERT_LE(least, uint64_t{1} << 53);
    for (const uint64_t bits : {least - 1, least, least + 1}) {
      if (bits >= uint64_t{1} << 53) continue;  // past the largest draw (or below 0, wrapped)
      EXPECT_EQ(static_cast<double>(bits) * 0x1.0p-53 >= rate, bits >= least) << bits;
    }
  }
  // A mask drawn from a fresh generator: element i keeps where the i-th uniform draw is >= rate.
  for (const double rate : {0.0, 0.3, 0.5}) {
    Generator generator(3);
    const Values mask = dropout_mask({4000}, DType::f64, rate, generator).to_vector<double>();
    for (size_t i = 0; i < mask.size(); ++i) {
      ASSERT_EQ(mask[i], random_uniform(3, i) >= rate ? 1 / (1 - rate) : 0.0) << rate << " " << i;
    }
  }
}

TEST(RandomStreams, ManualSeedResetsTheDefaultGenerator) {
  manual_seed(1234);
  const Values a = randn({8}, {.dtype = DType::f64}).to_vector<double>();
  const Values b = randn({8}, {.dtype = DType::f64}).to_vector<double>();
  manual_seed(1234);
  EXPECT_EQ(randn({8}, {.dtype = DType::f64}).to_vector<double>(), a);
  EXPECT_NE(a, b);
}

TEST(RandomStreams, RandnLooksStandardNormal) {
  Generator generator(5);
  const Values v = randn({100000}, {.dtype = DType::f64}, generator).to_vector<double>();
  double mean = 0, square = 0;
  int64_t infinite = 0;
  for (double x : v) {
    infinite += !std::isfinite(x);
    mean += x;
    square += x * x;
  }
  EXPECT_EQ(infinite, 0);
  mean /= static_cast<double>(v.size());
  const double variance = square / static_cast<double>(v.size()) - mean * mean;
  EXPECT_NEAR(mean, 0, 0.02);
  EXPECT_NEAR(variance, 1, 0.02);
}

TEST(RandomStreams, UniformStaysWithinItsBounds) {
  Generator generator(9);
  for (const DType dtype : {DType::f32, DType::f64}) {
    const Tensor t = uniform({50000}, -2, 3, {.dtype = dtype}, generator);
    EXPECT_EQ(t.dtype(), dtype);
    const Values v = t.to_vector<double>();
    const auto [low, high] = std::minmax_element(v.begin(), v.end());
    EXPECT_GE(*low, -2);
    EXPECT_LE(*high, 3);
    EXPECT_LT(*low, -1.99) << "the draws cover the range";
    EXPECT_GT(*high, 2.99);
    double mean = 0;
    for (double x : v) mean += x;
    EXPECT_NEAR(mean / static_cast<double>(v.size()), 0.5, 0.03);
  }
  Generator a(3), b(3);
  EXPECT_EQ(uniform({10}, 0, 1, {}, a).to_vector<float>(),
            uniform({10}, 0, 1, {}, b).to_vector<float>());
}

struct DropoutRow {
  std::string name;
  double rate;
  DType dtype;
};

void PrintTo(const DropoutRow& row, std::ostream* os) { *os << row.name; }

class DropoutMask : public ::testing::TestWithParam<DropoutRow> {};

TEST_P(DropoutMask, DropsAboutRateAndScalesTheRest) {
  const DropoutRow& row = GetParam();
  Generator generator(17);
  const Tensor mask = dropout_mask({200, 500}, row.dtype, row.rate, generator);
  EXPECT_EQ(mask.shape(), (Shape{200, 500}));
  EXPECT_EQ(mask.dtype(), row.dtype);
  EXPECT_FALSE(mask.requires_grad());
  const double keep =
      row.dtype == DType::f32 ? static_cast<float>(1 / (1 - row.rate)) : 1 / (1 - row.rate);
  int64_t dropped = 0, other = 0;
  for (double v : mask.to_vector<double>()) {
    dropped += v == 0;
    other += v != 0 && v != keep;
  }
  EXPECT_EQ(other, 0) << "every survivor is scaled by exactly 1 / (1 - rate)";
  // 100,000 draws: the standard deviation of the fraction is at most 0.0016.
  EXPECT_NEAR(static_cast<double>(dropped) / static_cast<double>(mask.numel()), row.rate, 0.01);

  // A smaller mask shows the stream: the same seed draws the same mask, another seed or the
  // next draw from the same generator a different one.
  Generator first(17), same(17), different(18);
  const Values small = dropout_mask({500}, row.dtype, row.rate, first).to_vector<double>();
  EXPECT_EQ(dropout_mask({500}, row.dtype, row.rate, same).to_vector<double>(), small);
  EXPECT_NE(dropout_mask({500}, row.dtype, row.rate, different).to_vector<double>(), small);
  EXPECT_NE(dropout_mask({500}, row.dtype, row.rate, first).to_vector<double>(), small);
  const Values big = mask.to_vector<double>();
  EXPECT_EQ(Values(big.begin(), big.begin() + 500), small) << "a pure function of (seed, index)";
}

INSTANTIATE_TEST_SUITE_P(Tensors, DropoutMask,
                         ::testing::ValuesIn(std::vector<DropoutRow>{
                             {"rate_0_1_f32", 0.1, DType::f32},
                             {"rate_0_5_f32", 0.5, DType::f32},
                             {"rate_0_3_f64", 0.3, DType::f64},
                             {"rate_0_9_f64", 0.9, DType::f64},
                         }),
                         [](const auto& test) { return test.param.name; });

TEST(Dropout, AppliesTheMaskWhenTrainingAndNothingOtherwise) {
  const Tensor x = uniform({1000}, 1, 2, {.dtype = DType::f64});
  Generator a(4), b(4);
  const Tensor dropped = dropout(x, 0.25, true, a);
  const Tensor mask = dropout_mask({1000}, DType::f64, 0.25, b);
  EXPECT_TRUE(allclose(dropped, x * mask, 0, 0));
  Generator unused(4);
  EXPECT_EQ(dropout(x, 0.25, false, unused).to_vector<double>(), x.to_vector<double>());
  EXPECT_EQ(dropout(x, 0, true, unused).to_vector<double>(), x.to_vector<double>());
  EXPECT_EQ(unused.offset(), 0u) << "no draw when nothing is dropped";
}

// ---- Conversions and printing -------------------------------------------------------------------

TEST(TensorConversions, ToVectorConvertsEachElement) {
  const Tensor f = tensor({1.5, -2.5, 3.75, -0.25}, {2, 2});
  EXPECT_EQ(f.to_vector<double>(), (Values{1.5, -2.5, 3.75, -0.25}));
  EXPECT_EQ(f.to_vector<float>(), (std::vector<float>{1.5f, -2.5f, 3.75f, -0.25f}));
  EXPECT_EQ(f.to_vector<int64_t>(), (std::vector<int64_t>{1, -2, 3, 0}));
  EXPECT_EQ(f.to_vector<int32_t>(), (std::vector<int32_t>{1, -2, 3, 0}));
  EXPECT_EQ(arange(3).to_vector<float>(), (std::vector<float>{0, 1, 2}));
  // Row-major order of a strided view, not storage order.
  EXPECT_EQ(transpose(f).to_vector<double>(), (Values{1.5, 3.75, -2.5, -0.25}));
}

TEST(TensorConversions, ItemOfOneElement) {
  EXPECT_EQ(scalar(2.5).item(), 2.5);
  EXPECT_EQ(tensor({-7}, {1, 1}).item(), -7);
  EXPECT_EQ(full({1}, 41, {.dtype = DType::i64}).item(), 41);
  EXPECT_EQ(slice(tensor({1, 2, 3}), 0, 2, 3).item(), 3) << "through a view's offset";
  EXPECT_EQ(tensor({1, 2, 3, 4}).sum().item(), 10);
}

TEST(TensorConversions, DataPointsAtTheFirstElementOfTheView) {
  const Tensor t = tensor({1, 2, 3, 4, 5, 6}, {2, 3}, {.dtype = DType::f64});
  EXPECT_EQ(t.data<double>()[4], 5);
  EXPECT_EQ(slice(t, 0, 1, 2).data<double>()[0], 4);
  EXPECT_EQ(slice(t, 0, 1, 2).raw_data(), static_cast<void*>(t.data<double>() + 3));
}

TEST(TensorPrinting, TwoByTwo) {
  EXPECT_EQ(tensor({1, 2.5, -3, 0.125}, {2, 2}).to_string(),
            "tensor([[1, 2.5],\n        [-3, 0.125]], shape=(2, 2), dtype=float32)");
}

TEST(TensorPrinting, DtypesShapesAndGradientFlag) {
  EXPECT_EQ(arange(3).to_string(), "tensor([0, 1, 2], shape=(3,), dtype=int64)");
  EXPECT_EQ(scalar(0.5, DType::f64).to_string(), "tensor(0.5, shape=(), dtype=float64)");
  EXPECT_EQ(ones({2}, {.requires_grad = true}).to_string(),
            "tensor([1, 1], shape=(2,), dtype=float32, requires_grad=true)");
  EXPECT_EQ(zeros({0}).to_string(), "tensor([], shape=(0,), dtype=float32)");
  EXPECT_EQ(Tensor().to_string(), "tensor(undefined)");
  EXPECT_EQ(arange(8).reshape({2, 2, 2}).to_string(),
            "tensor([[[0, 1],\n         [2, 3]],\n        [[4, 5],\n         [6, 7]]], "
            "shape=(2, 2, 2), dtype=int64)");
  EXPECT_EQ(transpose(tensor({1, 2, 3, 4}, {2, 2})).to_string(),
            "tensor([[1, 3],\n        [2, 4]], shape=(2, 2), dtype=float32)");
}

// ---- allclose -----------------------------------------------------------------------------------

struct CloseRow {
  std::string name;
  Tensor a, b;
  double rtol, atol;
  bool close;
};

void PrintTo(const CloseRow& row, std::ostream* os) { *os << row.name; }

class AllClose : public ::testing::TestWithParam<CloseRow> {};

TEST_P(AllClose, ComparesWithinTolerance) {
  const CloseRow& row = GetParam();
  EXPECT_EQ(allclose(row.a, row.b, row.rtol, row.atol), row.close);
}

const double nan = std::nan("");

INSTANTIATE_TEST_SUITE_P(
    Tensors, AllClose,
    ::testing::ValuesIn(std::vector<CloseRow>{
        {"identical", tensor({1, 2}), tensor({1, 2}), 0, 0, true},
        {"within_atol", tensor({1, 2}), tensor({1, 2.05}), 0, 0.1, true},
        {"outside_atol", tensor({1, 2}), tensor({1, 2.2}), 0, 0.1, false},
        {"within_rtol", tensor({1000}), tensor({1001}), 1e-2, 0, true},
        {"outside_rtol", tensor({1000}), tensor({1001}), 1e-4, 0, false},
        {"shape_mismatch", tensor({1, 2}), tensor({1, 2}, {1, 2}), 1, 1, false},
        {"different_dtypes_same_values", tensor({1, 2}), tensor({1, 2}, {}, {.dtype = DType::f64}),
         0, 0, true},
        {"nan_is_never_close", tensor({nan}), tensor({nan}), 1, 1, false},
        {"equal_infinities", tensor({INFINITY, -INFINITY}), tensor({INFINITY, -INFINITY}), 0, 0,
         true},
        {"opposite_infinities", tensor({INFINITY}), tensor({-INFINITY}), 1, 1, false},
        {"infinity_against_a_number", tensor({INFINITY}), tensor({1e30}), 1, 1, false},
        {"empty", zeros({0}), zeros({0}), 0, 0, true},
        {"view_against_copy", transpose(tensor({1, 2, 3, 4}, {2, 2})), tensor({1, 3, 2, 4}, {2, 2}),
         0, 0, true},
    }),
    [](const auto& test) { return test.param.name; });

// ---- Copies, views, versions --------------------------------------------------------------------

TEST(TensorCopy, IsIndependentContiguousAndHistoryFree) {
  Tensor x = tensor({1, 2, 3, 4, 5, 6}, {2, 3}, {.requires_grad = true});
  const Tensor view = transpose(x * 2.0);
  const Tensor copy = view.copy();
  EXPECT_TRUE(copy.is_contiguous());
  EXPECT_FALSE(copy.requires_grad());
  EXPECT_EQ(copy.shape(), (Shape{3, 2}));
  EXPECT_EQ(copy.to_vector<double>(), (Values{2, 8, 4, 10, 6, 12}));
  EXPECT_NE(copy.impl()->storage, view.impl()->storage);
  copy.assign_(zeros({3, 2}));
  EXPECT_EQ(view.to_vector<double>(), (Values{2, 8, 4, 10, 6, 12}));
  x.assign_(zeros({2, 3}));
  EXPECT_EQ(copy.to_vector<double>(), Values(6, 0));
}

TEST(TensorViews, SliceThenAssignIsVisibleThroughTheBase) {
  const Tensor base = zeros({3, 4});
  const Tensor row = slice(base, 0, 1, 2);
  EXPECT_EQ(row.impl()->storage, base.impl()->storage);
  row.assign_(tensor({1, 2, 3, 4}, {1, 4}));
  EXPECT_EQ(base.to_vector<double>(), (Values{0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0}));
  slice(base, 1, 3, 4).assign_(full({3, 1}, 9));  // a strided column
  EXPECT_EQ(base.to_vector<double>(), (Values{0, 0, 0, 9, 1, 2, 3, 9, 0, 0, 0, 9}));
}

TEST(TensorViews, ReshapeAndPermuteOfContiguousDataShareStorage) {
  const Tensor base = arange(6, {.dtype = DType::f64});
  const Tensor grid = reshape(base, {2, 3});
  const Tensor flipped = permute(grid, {1, 0});
  EXPECT_EQ(grid.impl()->storage, base.impl()->storage);
  EXPECT_EQ(flipped.impl()->storage, base.impl()->storage);
  EXPECT_EQ(flipped.strides(), (Shape{1, 3}));
  flipped.assign_(full({3, 2}, -1, {.dtype = DType::f64}));
  EXPECT_EQ(base.to_vector<double>(), Values(6, -1));
}

// The strides a reshape can read a strided tensor through, as torch.Tensor.view; none where
// dimensions would merge across a gap.
TEST(TensorViews, ReshapedStridesReadAStridedTensorInOrder) {
  struct Case {
    std::string name;
    Shape shape, strides, new_shape;
    std::optional<Shape> expected;
  };
  const std::vector<Case> cases = {
      {"contiguous", {2, 3}, {3, 1}, {3, 2}, Shape{2, 1}},
      {"time_step_of_a_batch_major_sequence", {8, 1, 64}, {768, 128, 1}, {8, 64}, Shape{768, 1}},
      {"unit_axis_added", {8, 64}, {768, 1}, {8, 1, 64}, Shape{768, 64, 1}},
      {"split_of_a_strided_axis", {6, 4}, {8, 1}, {2, 3, 4}, Shape{24, 8, 1}},
      {"merge_across_a_gap", {6, 4}, {8, 1}, {24}, std::nullopt},
      {"transposed", {3, 2}, {1, 3}, {6}, std::nullopt},
      {"broadcast_axis_kept", {3, 4}, {0, 1}, {3, 2, 2}, Shape{0, 2, 1}},
      {"broadcast_axis_merged", {3, 4}, {0, 1}, {12}, std::nullopt},
      {"to_zero_d", {1, 1}, {5, 7}, {}, Shape{}},
      {"from_zero_d", {}, {}, {1, 1}, Shape{1, 1}},
  };
  for (const Case& c : cases)
    EXPECT_EQ(reshaped_strides(c.shape, c.strides, c.new_shape), c.expected) << c.name;

  // Compiled, such a reshape reads the strided operand in place (sentiment's per-step slices of
  // the output gradient; CompiledModels checks no copy per time step). Eagerly it is a copy.
  const Tensor base = arange(24, {.dtype = DType::f64}).reshape({6, 4});
  const Tensor columns = slice(base, 1, 1, 3);  // (6, 2), strides (4, 1)
  const Tensor split = reshape(columns, {2, 3, 2});
  EXPECT_TRUE(split.is_contiguous());
  EXPECT_EQ(split.to_vector<double>(), columns.copy().reshape({2, 3, 2}).to_vector<double>());
}

TEST(TensorViews, AssignConvertsTheSourceDtype) {
  const Tensor target = zeros({3}, {.dtype = DType::i32});
  target.assign_(tensor({1.7, -2.2, 3}));
  EXPECT_EQ(target.to_vector<int32_t>(), (std::vector<int32_t>{1, -2, 3}));
}

TEST(TensorVersions, InPlaceWritesBumpTheSharedVersion) {
  const Tensor base = zeros({2, 3});
  const Tensor view = slice(base, 1, 0, 2);
  const Tensor detached = base.detach();
  const Tensor copy = base.copy();
  const uint64_t start = version(base);
  view.assign_(ones({2, 2}));
  EXPECT_EQ(version(base), start + 1) << "views share their base's version";
  EXPECT_EQ(version(detached), start + 1);
  base.mark_modified();
  EXPECT_EQ(version(view), start + 2);
  EXPECT_EQ(version(copy), 0u) << "a copy has its own storage and version";
  (void)(base + 1.0);
  EXPECT_EQ(version(base), start + 2) << "out-of-place ops leave the version alone";
}

}  // namespace
}  // namespace weft
