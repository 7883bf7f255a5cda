// Storage: one 64-byte aligned allocation shared by a tensor and its views (or none, for a meta
// tensor: an op result that a capture recorded without computing it).
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

 private:
  struct Free {
    void operator()(void* p) const;
  };
  // Lets make_shared (one allocation with the count) call the constructor for allocate() and
  // meta() only.
  class Key {
    friend Storage;
    explicit Key() = default;
  };

 public:
  // `allocation`: what malloc returned, `data` inside it at the alignment.
  Storage(Key, void* allocation, void* data, std::size_t bytes, std::string_view producer);

 private:
  void* checked_data() const {
    if (is_meta()) [[unlikely]]
      throw_meta_read();
    return data_;
  }
  [[noreturn]] void throw_meta_read() const;

  std::unique_ptr<void, Free> allocation_;
  void* data_;
  std::size_t bytes_;
  std::string_view producer_;  // of a meta storage: the op's name (OpDef names are static)
  uint64_t version_ = 0;
  uint64_t serial_;
};

// The serial the next allocation will get.
uint64_t next_storage_serial();

}  // namespace weft
