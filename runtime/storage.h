// Storage: one 64-byte aligned allocation shared by a tensor and its views.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace weft {

class Storage {
 public:
  static constexpr std::size_t alignment = 64;  // a cache line, and one AVX-512 register

  // Zero-filled, so that a fresh tensor never exposes uninitialised memory.
  static std::shared_ptr<Storage> allocate(std::size_t bytes);

  void* data() { return data_.get(); }
  const void* data() const { return data_.get(); }
  std::size_t bytes() const { return bytes_; }

  // Bumped by every in-place write; the tape compares it to detect saved tensors that changed.
  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  struct Free {
    void operator()(void* p) const;
  };
  Storage(void* data, std::size_t bytes) : data_(data), bytes_(bytes) {}

  std::unique_ptr<void, Free> data_;
  std::size_t bytes_;
  uint64_t version_ = 0;
};

}  // namespace weft
