// Whole-graph analyses the passes, the lowering stages and inspection share: the readers of each
// node, and the analyses computed on Boost.Graph views of the step's data flow (what the results
// need, post-dominators). Node ids are already a topological order (a node's inputs come first).
// Boost stays out of this header.
#pragma once

#include <span>
#include <vector>

#include "weft/compiler/graph.h"

namespace weft {

// The nodes that read each node (the data flow's out-edges), as compressed rows: built with one
// counting sort, where a vector per node would allocate ~10^5 times.
class Readers {
 public:
  explicit Readers(const Graph& graph);
  // One entry per read of node `id` (twice for a node that reads it twice).
  std::span<const int> of(int id) const {
    return {ids_.data() + offsets_[id], ids_.data() + offsets_[id + 1]};
  }

 private:
  std::vector<int> offsets_, ids_;
};

// For each node, whether an output or a store reads it, directly or through other nodes (the
// outputs' and stores' own nodes included).
std::vector<bool> needed(const Graph& graph);

// For each node, its immediate post-dominator: the first node that every path from it to the
// step's results (its outputs and stores) goes through; -1 for a result, for a node whose paths
// first meet at the end (they reach two results), and for a node no result needs.
std::vector<int> post_dominators(const Graph& graph);

}  // namespace weft
