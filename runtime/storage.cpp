#include "weft/runtime/storage.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace weft {

void Storage::Free::operator()(void* p) const { std::free(p); }

std::shared_ptr<Storage> Storage::allocate(std::size_t bytes) {
  // aligned_alloc needs a multiple of the alignment, and a non-null pointer even for zero bytes.
  const std::size_t rounded = (bytes + alignment - 1) / alignment * alignment + alignment;
  void* data = std::aligned_alloc(alignment, rounded);
  if (data == nullptr) throw std::bad_alloc();
  std::memset(data, 0, rounded);
  return std::shared_ptr<Storage>(new Storage(data, bytes));
}

}  // namespace weft
