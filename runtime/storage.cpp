#include "weft/runtime/storage.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "weft/runtime/error.h"

namespace weft {

namespace {
std::atomic<uint64_t> storage_serial{0};
}  // namespace

Storage::Storage(Key, void* allocation, void* data, std::size_t bytes, std::string_view producer)
    : allocation_(allocation),
      data_(data),
      bytes_(bytes),
      producer_(producer),
      serial_(storage_serial++) {}

uint64_t next_storage_serial() { return storage_serial.load(); }

void Storage::Free::operator()(void* p) const { std::free(p); }

std::shared_ptr<Storage> Storage::allocate(std::size_t bytes, bool zero_fill) {
  // Whole cache lines, and at least one, so even zero bytes have an address of their own.
  const std::size_t rounded = (bytes + alignment - 1) / alignment * alignment + alignment;
  // malloc's alignment raised by hand: glibc's aligned_alloc carves an aligned chunk out of a
  // larger one and frees the ends, 40-100 ns a tensor of a few KB against malloc's 6-14, and
  // every eager op and compiled step's output allocates.
  void* allocation = std::malloc(rounded + alignment - alignof(std::max_align_t));
  if (allocation == nullptr) throw std::bad_alloc();
  const auto address = reinterpret_cast<std::uintptr_t>(allocation);
  void* data = reinterpret_cast<void*>((address + alignment - 1) / alignment * alignment);
  if (zero_fill) std::memset(data, 0, rounded);
  return std::make_shared<Storage>(Key(), allocation, data, bytes, std::string_view{});
}

std::shared_ptr<Storage> Storage::meta(std::string_view producer) {
  return std::make_shared<Storage>(Key(), nullptr, nullptr, 0, producer);
}

void Storage::throw_meta_read() const {
  throw Error(
      "cannot read the value of a tensor computed by '{}': the op was recorded by a capture that "
      "computes no values (CaptureMode::meta), as compiled steps are captured; code that runs "
      "inside a step must not read values its ops compute",
      producer_);
}

}  // namespace weft
