#include "weft/runtime/huge_pages.h"

#include <sys/mman.h>

#include <cstdint>
#include <new>

namespace weft {

namespace {
std::size_t whole_pages(std::size_t bytes) {
  return (bytes + kPageBytes - 1) / kPageBytes * kPageBytes;
}
}  // namespace

void* allocate_huge_pages(std::size_t bytes) {
  const std::size_t size = whole_pages(bytes);
  // Mapped one huge page larger, then trimmed to a huge-page boundary: mmap aligns to 4 KiB only.
  void* mapped = mmap(nullptr, size + kHugePageBytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<std::uintptr_t>(mapped);
  const std::uintptr_t aligned = (start + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  if (aligned > start) munmap(mapped, aligned - start);
  if (const std::uintptr_t tail = start + kHugePageBytes - aligned; tail > 0)
    munmap(reinterpret_cast<void*>(aligned + size), tail);
  // Advice only: where the kernel has no transparent huge pages the mapping works with 4 KiB ones.
  madvise(reinterpret_cast<void*>(aligned), size, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
}

void free_huge_pages(void* data, std::size_t bytes) noexcept { munmap(data, whole_pages(bytes)); }

}  // namespace weft
