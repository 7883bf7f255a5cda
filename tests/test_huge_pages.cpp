// HugePageAllocator: arrays below kHugePageBytes from operator new, larger ones on mappings of
// their own aligned to a huge page; either way a std::vector behaves as with std::allocator.
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "weft/runtime/huge_pages.h"

namespace weft {
namespace {

struct Case {
  const char* name;
  std::size_t elements;  // of int64_t
};

class HugePages : public testing::TestWithParam<Case> {};

TEST_P(HugePages, VectorKeepsItsValuesAsItGrowsPastTheThreshold) {
  std::vector<int64_t, HugePageAllocator<int64_t>> values;
  for (std::size_t i = 0; i < GetParam().elements; ++i) values.push_back(static_cast<int64_t>(i));
  std::vector<int64_t, HugePageAllocator<int64_t>> copy = values;
  values.clear();
  values.shrink_to_fit();
  ASSERT_EQ(copy.size(), GetParam().elements);
  int64_t expected = 0;
  for (int64_t value : copy) ASSERT_EQ(value, expected++);
}

TEST_P(HugePages, LargeArraysStartOnAHugePageBoundary) {
  HugePageAllocator<int64_t> allocator;
  const std::size_t n = GetParam().elements;
  int64_t* data = allocator.allocate(n);
  std::iota(data, data + n, int64_t{0});  // every byte is writable
  EXPECT_EQ(data[n - 1], static_cast<int64_t>(n - 1));
  if (n * sizeof(int64_t) >= kHugePageBytes) {
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(data) % kHugePageBytes, 0u);
  }
  allocator.deallocate(data, n);
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, HugePages,
    testing::Values(Case{"Small", 100}, Case{"JustBelowTheThreshold", kHugePageBytes / 8 - 1},
                    Case{"AtTheThreshold", kHugePageBytes / 8},
                    Case{"SeveralHugePagesAndAPart", 5 * kHugePageBytes / 8 + 12345}),
    [](const testing::TestParamInfo<Case>& size) { return size.param.name; });

}  // namespace
}  // namespace weft
