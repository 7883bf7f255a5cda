// The arenas of a compiled step's runs: kept between runs, one more per run in flight, and each
// thread given back the arena it last ran in.
#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "weft/compiler/arena_pool.h"

namespace weft {
namespace {

constexpr int64_t kArenaBytes = 4096;

TEST(ArenaPool, RunsOneAtATimeShareOneArena) {
  ArenaPool pool(kArenaBytes);
  std::set<char*> seen;
  for (int run = 0; run < 3; ++run) seen.insert(ArenaPool::Lease(pool).data());
  EXPECT_EQ(seen.size(), 1u);
  EXPECT_EQ(pool.bytes_held(), kArenaBytes);
}

// Two threads take turns: the first leases, then the second, then they hand back in the same
// order, so the arena returned last (the second thread's) is the one on top when the first leases
// again. Each must still get its own arena back every round.
TEST(ArenaPool, EachThreadGetsBackTheArenaItRanIn) {
  ArenaPool pool(kArenaBytes);
  constexpr int rounds = 5;
  std::atomic<int> turn{0};
  std::vector<char*> arenas[2];
  const auto run = [&](int thread) {
    for (int round = 0; round < rounds; ++round) {
      const auto wait_for = [&](int step) {
        while (turn.load() != round * 4 + step) std::this_thread::yield();
      };
      wait_for(thread);  // leases in order: thread 0, then 1
      std::optional<ArenaPool::Lease> lease(pool);
      arenas[thread].push_back(lease->data());
      turn.fetch_add(1);
      wait_for(2 + thread);  // hands back in the same order
      lease.reset();
      turn.fetch_add(1);
    }
  };
  std::thread second(run, 1);
  run(0);
  second.join();
  for (int thread = 0; thread < 2; ++thread)
    for (char* arena : arenas[thread]) EXPECT_EQ(arena, arenas[thread][0]) << "thread " << thread;
  EXPECT_NE(arenas[0][0], arenas[1][0]);
  EXPECT_EQ(pool.bytes_held(), 2 * kArenaBytes);
}

}  // namespace
}  // namespace weft
