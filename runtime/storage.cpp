#include "weft/runtime/storage.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "weft/runtime/error.h"

namespace weft {

namespace {
std::atomic<uint64_t> storage_serial{0};
}  // namespace

Storage::Storage(void* data, std::size_t bytes, std::string_view producer)
    : data_(data), bytes_(bytes), producer_(producer), serial_(storage_serial++) {}

uint64_t next_storage_serial() { return storage_serial.load(); }

void Storage::Free::operator()(void* p) const { std::free(p); }

std::shared_ptr<Storage> Storage::allocate(std::size_t bytes, bool zero_fill) {
  // aligned_alloc needs a multiple of the alignment, and a non-null pointer even for zero bytes.
  const std::size_t rounded = (bytes + alignment - 1) / alignment * alignment + alignment;
  void* data = std::aligned_alloc(alignment, rounded);
  if (data == nullptr) throw std::bad_alloc();
  if (zero_fill) std::memset(data, 0, rounded);
  return std::shared_ptr<Storage>(new Storage(data, bytes));
}

std::shared_ptr<Storage> Storage::meta(std::string_view producer) {
  return std::shared_ptr<Storage>(new Storage(nullptr, 0, producer));
}

void Storage::throw_meta_read() const {
  throw Error(
      "cannot read the value of a tensor computed by '{}': the op was recorded by a capture that "
      "computes no values (CaptureMode::meta), as compiled steps are captured; code that runs "
      "inside a step must not read values its ops compute",
      producer_);
}

}  // namespace weft
