// The working memory of a compiled step's runs: an arena per run in flight, kept for later runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "weft/runtime/storage.h"

namespace weft {

// One arena while runs come one at a time, more while they overlap. A thread gets back the arena
// it last ran in where that one is free: the two halves of a batch run the same step at once on
// two cores, and an arena that changed cores between runs would start each run in the other
// core's cache (each half of W3 took 21% longer, of W1's prediction 16%).
class ArenaPool {
 public:
  explicit ArenaPool(int64_t arena_bytes);

  // One run's arena, handed back to the pool when the lease ends.
  class Lease {
   public:
    explicit Lease(ArenaPool& pool);
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    char* data() const { return static_cast<char*>(arena_->data()); }

   private:
    ArenaPool& pool_;
    std::shared_ptr<Storage> arena_;
  };

  // Bytes of every arena made so far.
  int64_t bytes_held() const;

 private:
  struct Free {
    std::shared_ptr<Storage> arena;
    std::thread::id last_thread;
  };
  const size_t bytes_;
  mutable std::mutex mutex_;
  std::vector<Free> free_;  // guarded by mutex_
  int64_t made_ = 1;        // guarded by mutex_
};

}  // namespace weft
