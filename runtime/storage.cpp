#include "weft/runtime/storage.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

namespace weft {

namespace {
std::atomic<uint64_t> storage_serial{0};
}  // namespace

Storage::Storage(void* data, std::size_t bytes)
    : data_(data), bytes_(bytes), serial_(storage_serial++) {}

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

}  // namespace weft
