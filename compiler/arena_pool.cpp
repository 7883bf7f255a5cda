#include "weft/compiler/arena_pool.h"

#include <algorithm>

namespace weft {

ArenaPool::ArenaPool(int64_t arena_bytes)
    : bytes_(static_cast<size_t>(std::max<int64_t>(arena_bytes, 64))) {
  free_.push_back({Storage::allocate(bytes_, false), {}});
}

ArenaPool::Lease::Lease(ArenaPool& pool) : pool_(pool) {
  {
    std::lock_guard lock(pool_.mutex_);
    if (!pool_.free_.empty()) {
      auto own = std::ranges::find(pool_.free_, std::this_thread::get_id(), &Free::last_thread);
      if (own == pool_.free_.end()) own = pool_.free_.end() - 1;
      arena_ = std::move(own->arena);
      pool_.free_.erase(own);
      return;
    }
    ++pool_.made_;
  }
  arena_ = Storage::allocate(pool_.bytes_, false);
}

ArenaPool::Lease::~Lease() {
  std::lock_guard lock(pool_.mutex_);
  pool_.free_.push_back({std::move(arena_), std::this_thread::get_id()});
}

int64_t ArenaPool::bytes_held() const {
  std::lock_guard lock(mutex_);
  return made_ * static_cast<int64_t>(bytes_);
}

}  // namespace weft
