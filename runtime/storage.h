// Storage: one 64-byte aligned allocation shared by a tensor and its views.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace weft {

class Storage {
 public:
  static constexpr std::size_t alignment = 64;  // a cache line, and one AVX-512 register

  // Uninitialised unless `zero_fill`: every kernel writes its whole output, and zero-filling
  // each fresh tensor costs a tenth of an LSTM's forward pass.
  static std::shared_ptr<Storage> allocate(std::size_t bytes, bool zero_fill);

  void* data() { return data_.get(); }
  const void* data() const { return data_.get(); }
  std::size_t bytes() const { return bytes_; }

  // Allocation order, process-wide: tells storage that existed before a point in time (a
  // capture's start) from storage made after it.
  uint64_t serial() const { return serial_; }

  // Bumped by every in-place write; the tape compares it to detect saved tensors that changed.
  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  struct Free {
    void operator()(void* p) const;
  };
  Storage(void* data, std::size_t bytes);

  std::unique_ptr<void, Free> data_;
  std::size_t bytes_;
  uint64_t version_ = 0;
  uint64_t serial_;
};

// The serial the next allocation will get.
uint64_t next_storage_serial();

}  // namespace weft
