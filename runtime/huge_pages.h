// Large arrays on transparent huge pages. An array of 2 MiB or more gets a mapping of its own,
// marked MADV_HUGEPAGE, so that filling it faults once per 2 MiB instead of once per 4 KiB page.
// Where page faults are dear (measured 10 us per 4 KiB page on the bench's VMs, 0.2-1 us per
// 4 KiB of a huge page) those faults were most of the compiler passes' time at long sequences
// (a ~10^5-node step graph is ~10 MB of nodes that each pass may rebuild), and a third of an
// eager training step's (tensors of several MB, made afresh by every step: Storage).
#pragma once

#include <cstddef>
#include <memory>

namespace weft {

// Arrays smaller than this come from operator new, as std::allocator's do.
inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;
inline constexpr std::size_t kPageBytes = 4096;  // a base page, what mmap aligns to

// `bytes` (>= kHugePageBytes) of fresh, zeroed memory aligned to a huge page; throws
// std::bad_alloc when the system has none. Each whole 2 MiB of it is on a huge page; a last part
// under 2 MiB stays on 4 KiB pages, so no memory past `bytes` is touched (round `bytes` up with
// whole_huge_pages to have that part fault in at once too). free_huge_pages takes the same
// `bytes` back.
void* allocate_huge_pages(std::size_t bytes);
void free_huge_pages(void* data, std::size_t bytes) noexcept;

constexpr std::size_t whole_huge_pages(std::size_t bytes) {
  return (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
}

template <typename T>
struct HugePageAllocator {
  using value_type = T;

  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) {}  // NOLINT: rebinding, as std::allocator

  T* allocate(std::size_t n) {
    if (n * sizeof(T) < kHugePageBytes) return std::allocator<T>().allocate(n);
    return static_cast<T*>(allocate_huge_pages(whole_huge_pages(n * sizeof(T))));
  }
  void deallocate(T* data, std::size_t n) noexcept {
    if (n * sizeof(T) < kHugePageBytes) return std::allocator<T>().deallocate(data, n);
    free_huge_pages(data, whole_huge_pages(n * sizeof(T)));
  }

  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const {
    return true;  // stateless: any one frees what another allocated
  }
};

}  // namespace weft
