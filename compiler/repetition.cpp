// The repeated stretches of a step's calls (fuse's last step; compile.h): an unrolled time loop
// runs the same kernels on buffers that take one another's place from one time step to the next.
// Found once, here: place lays each chain of such buffers out at a fixed stride, and reroll turns
// each run into a loop.
#include "weft/compiler/repetition.h"

#include <algorithm>
#include <optional>

namespace weft {
namespace {

constexpr size_t kMaxPeriod = 64;  // calls in one repeated stretch (one time step)
constexpr size_t kMinRepeats = 3;

// A kernel argument before offsets: a buffer and an element offset into it.
struct Arg {
  int buffer;
  int64_t offset;
};

// How an argument of a call moves one repetition later: within its buffer or chain (by `position`
// places), or to the next buffer of a new chain (one new buffer per repetition).
struct Move {
  bool next_buffer = false;
  int64_t position = 0;
  int64_t offset = 0;  // elements
  bool operator==(const Move&) const = default;
};

struct Candidate {
  size_t period = 0, count = 1;
  std::vector<std::vector<Move>> moves = {};  // by call of the period: each argument's move
};

class RunFinder {
 public:
  explicit RunFinder(Fusion& fusion) : fusion_(fusion) {
    for (const Call& call : fusion.calls) {
      args_.emplace_back();
      for (const std::vector<Place>* places : {&call.reads, &call.writes})
        for (const Place& place : *places)
          args_.back().push_back({place.buffer, place.layout.offset});
    }
    fusion.chain_of.assign(fusion.buffers.size(), -1);
    fusion.chain_position.assign(fusion.buffers.size(), 0);
    next_.assign(fusion.buffers.size(), -1);
    follows_.assign(fusion.buffers.size(), false);
  }

  // Greedily, from each call on, the longest run before `end` (the stores are a range of their
  // own: the finite-loss guard goes before them); the chains of each run as it is found, since a
  // later run (the backward pass) may walk an earlier run's chain (the forward activations).
  void scan(size_t begin, size_t end) {
    for (size_t i = begin; i < end;) {
      const Candidate run = longest_run(i, end);
      if (run.period == 0) {
        ++i;
        continue;
      }
      fusion_.runs.push_back({.first = i, .period = run.period, .count = run.count});
      add_chains(fusion_.runs.back(), run.moves);
      i = fusion_.runs.back().end();
    }
  }

 private:
  std::optional<Move> move_between(const Arg& a, const Arg& b, int period) const {
    const Buffer& from = fusion_.buffers[a.buffer];
    const Buffer& to = fusion_.buffers[b.buffer];
    Move move{.offset = b.offset - a.offset};
    if (a.buffer == b.buffer) return move;
    if (from.kind != Buffer::Kind::arena || to.kind != Buffer::Kind::arena) return std::nullopt;
    const int chain = fusion_.chain_of[a.buffer];
    if (chain >= 0 && chain == fusion_.chain_of[b.buffer]) {
      move.position = fusion_.chain_position[b.buffer] - fusion_.chain_position[a.buffer];
      return move;
    }
    if (chain >= 0 || fusion_.chain_of[b.buffer] >= 0 || from.bytes != to.bytes ||
        to.first - from.first != period)
      return std::nullopt;
    move.next_buffer = true;
    return move;
  }

  // Appends to `moves` how call b's arguments follow call a's; false when b is not a repeat of a.
  bool moves_between(size_t a, size_t b, std::vector<Move>& moves) const {
    if (fusion_.kernel_of[a] != fusion_.kernel_of[b]) return false;
    for (size_t k = 0; k < args_[a].size(); ++k) {
      const std::optional<Move> move =
          move_between(args_[a][k], args_[b][k], static_cast<int>(b - a));
      if (!move) return false;
      moves.push_back(*move);
    }
    return true;
  }

  // The longest run starting at call `first` (ending by `end`) in which every argument moves the
  // same way each time; period 0 when there is none.
  Candidate longest_run(size_t first, size_t end) {
    Candidate best;
    for (size_t period = 1; period <= kMaxPeriod && first + kMinRepeats * period <= end; ++period) {
      // A multiple of a period that repeats is made of that period's stretches: it covers no more
      // calls, and checking it would redo the same comparisons two or three times over.
      if (best.period > 0 && period % best.period == 0) continue;
      Candidate candidate{.period = period, .count = 1};
      auto repeats = [&] {
        const size_t start = first + (candidate.count - 1) * period;
        for (size_t j = 0; j < period; ++j) {
          moves_.clear();
          if (!moves_between(start + j, start + period + j, moves_)) return false;
          if (candidate.count == 1)
            candidate.moves.push_back(moves_);
          else if (moves_ != candidate.moves[j])
            return false;
        }
        return true;
      };
      while (first + (candidate.count + 1) * period <= end && repeats()) ++candidate.count;
      if (candidate.count >= kMinRepeats &&
          candidate.count * period > best.count * std::max<size_t>(best.period, 1))
        best = std::move(candidate);
    }
    return best;
  }

  // Each argument of the run that moves to a new buffer every repetition makes its buffers a chain.
  void add_chains(const Run& run, const std::vector<std::vector<Move>>& moves) {
    for (size_t c = run.first; c + run.period < run.end(); ++c)
      for (size_t k = 0; k < args_[c].size(); ++k)
        if (moves[(c - run.first) % run.period][k].next_buffer) {
          const int buffer = args_[c][k].buffer, follower = args_[c + run.period][k].buffer;
          if (next_[buffer] < 0) moved_.push_back(buffer);
          next_[buffer] = follower;
          follows_[follower] = true;
        }
    std::sort(moved_.begin(), moved_.end());
    for (int head : moved_)
      if (!follows_[head]) add_chain(head);
    for (int buffer : moved_) {
      follows_[next_[buffer]] = false;
      next_[buffer] = -1;
    }
    moved_.clear();
  }

  void add_chain(int head) {
    int64_t position = 0;
    for (int b = head; b >= 0 && fusion_.chain_of[b] < 0; b = next_[b]) {
      fusion_.chain_of[b] = fusion_.chain_count;
      fusion_.chain_position[b] = position++;
    }
    ++fusion_.chain_count;
  }

  Fusion& fusion_;
  std::vector<std::vector<Arg>> args_;  // by call: its reads', then its writes' buffers
  std::vector<Move> moves_;  // one buffer for every comparison: this runs for each call of a step
  // By buffer, within one run: the buffer the next repetition uses in its place (or -1), and
  // whether it is itself such a next one; `moved_`: the buffers with a next one.
  std::vector<int> next_;
  std::vector<bool> follows_;
  std::vector<int> moved_;
};

}  // namespace

void find_runs(Fusion& fusion) {
  RunFinder finder(fusion);
  const auto first_store = static_cast<size_t>(fusion.first_store);
  finder.scan(0, first_store);
  finder.scan(first_store, fusion.calls.size());
}

}  // namespace weft
