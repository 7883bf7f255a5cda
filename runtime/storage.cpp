#include "weft/runtime/storage.h"

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>
#include <utility>
#include <vector>

#include "weft/runtime/environment.h"
#include "weft/runtime/error.h"
#include "weft/runtime/huge_pages.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define WEFT_POISON(data, bytes) ASAN_POISON_MEMORY_REGION(data, bytes)
#define WEFT_UNPOISON(data, bytes) ASAN_UNPOISON_MEMORY_REGION(data, bytes)
#else
#define WEFT_POISON(data, bytes) static_cast<void>(0)
#define WEFT_UNPOISON(data, bytes) static_cast<void>(0)
#endif

namespace weft {

namespace {

std::atomic<uint64_t> storage_serial{0};

// Buffers of a page or less come from malloc: its free lists serve them fastest, and they
// hardly touch fresh pages. Cached ones are over 2^kMinExponent bytes.
constexpr int kMinExponent = 12;
constexpr std::size_t kMaxMallocBytes = std::size_t{1} << kMinExponent;

// A buffer's size: `bytes` in (2^e, 2^(e+1)] rounded up to a multiple of 2^(e-kClassBits), so
// it is at most 1/2^kClassBits larger than its tensor and one class serves tensors of several
// sizes. `index` numbers the classes from 0 up.
constexpr int kClassBits = 3;
constexpr std::size_t kClassesPerDoubling = std::size_t{1} << kClassBits;
struct SizeClass {
  std::size_t bytes;
  std::size_t index;
};
SizeClass size_class(std::size_t bytes) {
  const int exponent = std::bit_width(bytes - 1) - 1;
  const std::size_t granule = std::size_t{1} << (exponent - kClassBits);
  const std::size_t granules =
      (bytes + granule - 1) / granule;  // 2^kClassBits + 1 to 2^(kClassBits+1)
  return {granules * granule,
          static_cast<std::size_t>(exponent - kMinExponent) * kClassesPerDoubling +
              (granules - kClassesPerDoubling - 1)};
}
constexpr std::size_t kSizeClasses = (64 - kMinExponent) * kClassesPerDoubling;
std::size_t class_bytes(std::size_t index) {
  return (index % kClassesPerDoubling + kClassesPerDoubling + 1)
         << (index / kClassesPerDoubling + kMinExponent - kClassBits);
}

int64_t limit_from_environment() {
  constexpr int64_t default_mib = 1024;
  return environment_integer("WEFT_BUFFER_CACHE_MB", 0, int64_t{1} << 40).value_or(default_mib)
         << 20;
}

// Where buffers under 2 MiB live: carved one after another out of large mappings of our own, not
// malloc's heap. Kept in the heap, thousands of them sat among the small blocks malloc still
// serves (tensor headers, tape nodes) and made those blocks' frees dear (unlink_chunk,
// malloc_consolidate: an eager W3 step took 30% longer after an eager W1 had run). A mapping per
// buffer would avoid that too, but freeing buffers out of the middle of merged mappings splits
// them, towards the system's limit on mappings per process (65,530 by default); the arena's
// mappings are never split: a discarded buffer gives back its pages (MADV_DONTNEED) and keeps
// its address range.
class BufferArena {
 public:
  // Whether `data` lies in one of the arena's mappings. Called with the cache's mutex held.
  bool contains(const void* data) const {
    const auto address = reinterpret_cast<std::uintptr_t>(data);
    return std::any_of(regions_.begin(), regions_.end(), [&](const auto& region) {
      return address >= region.first && address < region.second;
    });
  }

  // `bytes` (a multiple of the alignment) of address range. Called with the cache's mutex held.
  void* carve(std::size_t bytes) {
    if (bytes > end_ - next_) map_region(bytes);
    void* data = reinterpret_cast<void*>(next_);
    next_ += bytes;
    return data;
  }

  // Has the system back the range's pages now, in one call rather than a page fault per 4 KiB
  // page (10 us each on the bench's VMs). Advice only: older kernels fault the pages in as used.
  static void populate([[maybe_unused]] void* data, [[maybe_unused]] std::size_t bytes) noexcept {
#ifdef MADV_POPULATE_WRITE
    const auto [first, last] = pages_touched(data, bytes);
    madvise(reinterpret_cast<void*>(first), last - first, MADV_POPULATE_WRITE);
#endif
  }

  // Gives back the pages that lie wholly inside the range; the pages at its ends may hold a
  // neighbour's bytes.
  static void discard(void* data, std::size_t bytes) noexcept {
    const auto start = reinterpret_cast<std::uintptr_t>(data);
    const std::uintptr_t first = (start + kPageBytes - 1) / kPageBytes * kPageBytes;
    const std::uintptr_t last = (start + bytes) / kPageBytes * kPageBytes;
    if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
  }

 private:
  static constexpr std::size_t kRegionBytes = std::size_t{1} << 30;  // address range, not memory

  static std::pair<std::uintptr_t, std::uintptr_t> pages_touched(void* data, std::size_t bytes) {
    const auto start = reinterpret_cast<std::uintptr_t>(data);
    return {start / kPageBytes * kPageBytes,
            (start + bytes + kPageBytes - 1) / kPageBytes * kPageBytes};
  }

  // A new region for buffers; what was left of the last one stays unused (never touched, so it
  // costs no memory). Smaller regions where the system refuses a large one (strict overcommit).
  void map_region(std::size_t bytes) {
    for (std::size_t size = kRegionBytes;; size = std::max(size / 2, bytes)) {
      void* region = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (region != MAP_FAILED) {
        next_ = reinterpret_cast<std::uintptr_t>(region);
        end_ = next_ + size;
        regions_.emplace_back(next_, end_);
        return;
      }
      if (size == bytes) throw std::bad_alloc();
    }
  }

  std::uintptr_t next_ = 0;
  std::uintptr_t end_ = 0;
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> regions_;  // [start, end) of each
};

// A block of malloc's heap for a buffer of `size` bytes (a size class's). aligned_alloc of the
// class's size rather than Storage's hand-aligned malloc: eager steps measured 15-20% faster
// with the cache off.
void* heap_block(std::size_t size) {
  void* data = std::aligned_alloc(Storage::alignment, size);
  if (data == nullptr) throw std::bad_alloc();
  return data;
}

class BufferCache {
 public:
  // A buffer of size_class(bytes) bytes (64-byte aligned), kept or new, and that size, for give()
  // to take back. For a size under 2 MiB that the cache could not keep (a limit below it, 0 for
  // one), a block of malloc's heap and 0, for the caller to free: an arena buffer's pages would go
  // back to the system at every free.
  std::pair<void*, std::size_t> take(std::size_t bytes) {
    const auto [size, index] = size_class(bytes);
    void* data = nullptr;
    bool keepable = false;
    {
      std::lock_guard lock(mutex_);
      keepable = size >= kHugePageBytes || limit_bytes_ >= static_cast<int64_t>(size);
      if (keepable) {
        last_used_[index] = ++uses_;
        if (std::vector<void*>& kept = free_[index]; !kept.empty()) {
          data = kept.back();
          kept.pop_back();
          cached_bytes_ -= size;
          ++hits_;
          WEFT_UNPOISON(data, size);
          return {data, size};
        }
        ++misses_;
        if (size < kHugePageBytes && !from_malloc_[index]) data = arena_range(index, size);
      }
    }
    if (!keepable) return {heap_block(size), 0};
    if (data == nullptr)
      return {size >= kHugePageBytes ? allocate_huge_pages(size) : heap_block(size), size};
    WEFT_UNPOISON(data, size);  // a discarded buffer's range stays poisoned until reused
    BufferArena::populate(data, size);
    return {data, size};
  }

  // Keeps `data` for later, making room by freeing the buffers of the classes used longest ago
  // (a later step, or another model, may ask for other sizes than the buffers kept); frees it if
  // its own class's buffers already fill the limit. Classes freed for room take their next
  // buffers from malloc (from_malloc_).
  void give(void* data, std::size_t size) noexcept {
    std::optional<Evicted> evicted;  // rarely needed, and 10 KB to clear
    bool kept = false;
    {
      std::lock_guard lock(mutex_);
      const std::size_t index = size_class(size).index;
      last_used_[index] = ++uses_;
      if (cached_bytes_ + static_cast<int64_t>(size) > limit_bytes_)
        take_out_least_used(limit_bytes_ - static_cast<int64_t>(size), index, evicted.emplace());
      if (cached_bytes_ + static_cast<int64_t>(size) <= limit_bytes_) {
        try {
          free_[index].push_back(data);
          cached_bytes_ += size;
          kept = true;
          WEFT_POISON(data, size);
        } catch (const std::bad_alloc&) {
          // no room to note it down: freed below
        }
      }
      if (!kept) from_malloc_[index] = true;
    }
    if (!kept) release(data, size);
    if (evicted) release(*evicted);
  }

  void set_limit(int64_t limit_bytes) {
    {
      std::lock_guard lock(mutex_);
      limit_bytes_ = limit_bytes;
    }
    keep_at_most(limit_bytes);
  }

  // Frees kept buffers until at most `bytes` remain, and has every class try the arena again (a
  // new limit, or a fresh start: another model may work within it).
  void keep_at_most(int64_t bytes) {
    Evicted evicted;
    {
      std::lock_guard lock(mutex_);
      take_out_least_used(bytes, kSizeClasses, evicted);
      from_malloc_.fill(false);
    }
    release(evicted);
  }

  BufferCacheStats stats() {
    std::lock_guard lock(mutex_);
    return {.cached_bytes = cached_bytes_,
            .limit_bytes = limit_bytes_,
            .hits = hits_,
            .misses = misses_};
  }

 private:
  // Buffers taken out of the cache to be freed, by size class (moved, so nothing allocates).
  using Evicted = std::array<std::vector<void*>, kSizeClasses>;

  // Moves kept buffers into `evicted`, whole classes at a time from the one used longest ago,
  // until at most `bytes` remain or only class `spared`'s do, and marks those classes
  // from_malloc_. Called with mutex_ held.
  void take_out_least_used(int64_t bytes, std::size_t spared, Evicted& evicted) noexcept {
    while (cached_bytes_ > bytes) {
      std::size_t oldest = kSizeClasses;
      for (std::size_t index = 0; index < kSizeClasses; ++index)
        if (index != spared && !free_[index].empty() &&
            (oldest == kSizeClasses || last_used_[index] < last_used_[oldest]))
          oldest = index;
      if (oldest == kSizeClasses) return;
      cached_bytes_ -= static_cast<int64_t>(class_bytes(oldest) * free_[oldest].size());
      evicted[oldest].swap(free_[oldest]);
      from_malloc_[oldest] = true;
    }
  }

  // The address range for a new arena buffer of class `index`: one whose pages were given back,
  // or a fresh one. Called with mutex_ held.
  void* arena_range(std::size_t index, std::size_t size) {
    std::vector<void*>& discarded = discarded_[index];
    if (discarded.empty()) return arena_.carve(size);
    void* data = discarded.back();
    discarded.pop_back();
    return data;
  }

  // A huge-page buffer is unmapped; an arena buffer's pages go back to the system and its
  // address range is noted for the next buffer of its class (it stays poisoned meanwhile).
  void release(void* data, std::size_t size) noexcept {
    if (size >= kHugePageBytes) {
      WEFT_UNPOISON(data, size);
      free_huge_pages(data, size);
      return;
    }
    {
      std::lock_guard lock(mutex_);
      if (!arena_.contains(data)) {
        WEFT_UNPOISON(data, size);
        std::free(data);
        return;
      }
    }
    WEFT_POISON(data, size);
    BufferArena::discard(data, size);
    std::lock_guard lock(mutex_);
    try {
      discarded_[size_class(size).index].push_back(data);
    } catch (const std::bad_alloc&) {
      // no room to note it down: its address range is lost, its pages are not
    }
  }
  void release(const Evicted& evicted) noexcept {
    for (std::size_t index = 0; index < kSizeClasses; ++index)
      for (void* data : evicted[index]) release(data, class_bytes(index));
  }

  std::mutex mutex_;
  BufferArena arena_;
  std::array<std::vector<void*>, kSizeClasses> free_;  // by size class index
  // Arena buffers whose pages were given back: address ranges for later buffers of the class.
  std::array<std::vector<void*>, kSizeClasses> discarded_;
  // Classes whose buffers the limit made the cache free: a working set larger than the limit.
  // Their new buffers come from malloc's heap, which recycles them without system calls; the
  // arena would give its pages back and take them again all through a step, each time with a
  // TLB flush on every core the process runs on (an eager step 2-4x slower).
  std::array<bool, kSizeClasses> from_malloc_ = {};
  std::array<uint64_t, kSizeClasses> last_used_ = {};  // uses_ when last taken or given
  uint64_t uses_ = 0;
  int64_t cached_bytes_ = 0;
  int64_t limit_bytes_ = limit_from_environment();
  int64_t hits_ = 0;
  int64_t misses_ = 0;
};

// Never destroyed: tensors in static objects may be freed after every other static has gone.
BufferCache& buffer_cache() {
  static BufferCache* cache = new BufferCache;
  return *cache;
}

}  // namespace

Storage::Storage(Key, void* allocation, void* data, std::size_t bytes, std::size_t buffer_bytes,
                 std::string_view producer)
    : allocation_(allocation),
      data_(data),
      bytes_(bytes),
      buffer_bytes_(buffer_bytes),
      producer_(producer),
      serial_(storage_serial++) {}

Storage::~Storage() {
  if (buffer_bytes_ > 0)
    buffer_cache().give(allocation_, buffer_bytes_);
  else
    std::free(allocation_);
}

uint64_t next_storage_serial() { return storage_serial.load(); }

std::shared_ptr<Storage> Storage::allocate(std::size_t bytes, bool zero_fill) {
  // Whole cache lines, and at least one, so even zero bytes have an address of their own.
  const std::size_t rounded = (bytes + alignment - 1) / alignment * alignment + alignment;
  if (rounded > kMaxMallocBytes) {
    const auto [data, buffer_bytes] = buffer_cache().take(rounded);
    if (zero_fill) std::memset(data, 0, rounded);
    return std::make_shared<Storage>(Key(), data, data, bytes, buffer_bytes, std::string_view{});
  }
  // malloc's alignment raised by hand: glibc's aligned_alloc carves an aligned chunk out of a
  // larger one and frees the ends, 40-100 ns a tensor of a few KB against malloc's 6-14, and
  // every eager op and compiled step's output allocates.
  void* allocation = std::malloc(rounded + alignment - alignof(std::max_align_t));
  if (allocation == nullptr) throw std::bad_alloc();
  const auto address = reinterpret_cast<std::uintptr_t>(allocation);
  void* data = reinterpret_cast<void*>((address + alignment - 1) / alignment * alignment);
  if (zero_fill) std::memset(data, 0, rounded);
  return std::make_shared<Storage>(Key(), allocation, data, bytes, 0, std::string_view{});
}

std::shared_ptr<Storage> Storage::meta(std::string_view producer) {
  return std::make_shared<Storage>(Key(), nullptr, nullptr, 0, 0, producer);
}

void Storage::throw_meta_read() const {
  throw Error(
      "cannot read the value of a tensor computed by '{}': the op was recorded by a capture that "
      "computes no values (CaptureMode::meta), as compiled steps are captured; code that runs "
      "inside a step must not read values its ops compute",
      producer_);
}

BufferCacheStats buffer_cache_stats() { return buffer_cache().stats(); }

void release_cached_buffers() { buffer_cache().keep_at_most(0); }

void set_buffer_cache_limit(int64_t bytes) {
  WEFT_CHECK(bytes >= 0, "set_buffer_cache_limit: the limit must be 0 or more bytes, got {}",
             bytes);
  buffer_cache().set_limit(bytes);
}

}  // namespace weft
