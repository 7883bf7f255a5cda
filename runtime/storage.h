// Storage: one 64-byte aligned allocation shared by a tensor and its views (or none, for a meta
// tensor: an op result that a capture recorded without computing it). Buffers over 4 KiB are
// kept when freed, for later tensors of about their size (the buffer cache, below).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace weft {

class Storage {
 public:
  static constexpr std::size_t alignment = 64;  // a cache line, and one AVX-512 register

  // Uninitialised unless `zero_fill`: every kernel writes its whole output, and zero-filling
  // each fresh tensor costs a tenth of an LSTM's forward pass.
  static std::shared_ptr<Storage> allocate(std::size_t bytes, bool zero_fill);
  // No buffer at all, for the result of an op that a capture records without running
  // (`producer` names the op). Reading its data throws weft::Error naming the op.
  static std::shared_ptr<Storage> meta(std::string_view producer);

  void* data() { return checked_data(); }
  const void* data() const { return checked_data(); }
  std::size_t bytes() const { return bytes_; }
  bool is_meta() const { return data_ == nullptr; }
  std::string_view producer() const { return producer_; }  // of a meta storage

  // Allocation order, process-wide: tells storage that existed before a point in time (a
  // capture's start) from storage made after it.
  uint64_t serial() const { return serial_; }

  // Bumped by every in-place write; the tape compares it to detect saved tensors that changed.
  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

 private:
  // Lets make_shared (one allocation with the count) call the constructor for allocate() and
  // meta() only.
  class Key {
    friend Storage;
    explicit Key() = default;
  };

 public:
  // `allocation`: what malloc returned, `data` inside it at the alignment; or, with
  // `buffer_bytes` > 0, a buffer of that size from the buffer cache, `data` at its start.
  Storage(Key, void* allocation, void* data, std::size_t bytes, std::size_t buffer_bytes,
          std::string_view producer);

 private:
  void* checked_data() const {
    if (is_meta()) [[unlikely]]
      throw_meta_read();
    return data_;
  }
  [[noreturn]] void throw_meta_read() const;

  void* allocation_;
  void* data_;
  std::size_t bytes_;
  std::size_t buffer_bytes_;   // of a buffer from the buffer cache; 0 for malloc's
  std::string_view producer_;  // of a meta storage: the op's name (OpDef names are static)
  uint64_t version_ = 0;
  uint64_t serial_;
};

// The serial the next allocation will get.
uint64_t next_storage_serial();

// The buffer cache. A training or inference step makes the same tensors again each time, and
// memory handed back to the system is faulted in again page by page when it returns: at 10 us per
// 4 KiB page on the bench's VMs, that was a third of an eager training step. So a freed buffer
// over 4 KiB is kept, up to a limit, and given to the next tensor of its size class (a class is at
// most 12.5% larger than its tensors); buffers of 2 MiB or more are on huge pages
// (runtime/huge_pages.h), smaller ones in mappings of the cache's own, outside malloc's heap.
// Thread-safe. Kept buffers count in the process's resident memory, as PyTorch's CUDA caching
// allocator's do in device memory; release_cached_buffers() gives them back.
struct BufferCacheStats {
  int64_t cached_bytes = 0;  // kept now, in no tensor
  int64_t limit_bytes = 0;
  int64_t hits = 0;    // tensors given a kept buffer
  int64_t misses = 0;  // tensors of a cached size that needed a new one
};
BufferCacheStats buffer_cache_stats();
// Frees every kept buffer (as torch.cuda.empty_cache()).
void release_cached_buffers();
// The most bytes kept: at first WEFT_BUFFER_CACHE_MB MiB if the environment sets it, else 1 GiB;
// 0 keeps none. Frees kept buffers beyond a lower limit. Throws weft::Error for a negative one.
void set_buffer_cache_limit(int64_t bytes);

}  // namespace weft
