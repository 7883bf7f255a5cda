// How a pass changes a graph: rebuilt (a pass that adds nodes), or in place (one that adds none:
// no ~10^5 nodes moved into a fresh graph). passes.cpp's passes are written with these.
#pragma once

#include <functional>
#include <numeric>
#include <vector>

#include "weft/compiler/graph.h"
#include "weft/runtime/error.h"

namespace weft {

// ---- rebuild ------------------------------------------------------------------------------------

// Adds `node` (its inputs already ids in `out`) to `out` as it is; returns its id.
int append(Graph& out, GraphNode node);

// What becomes of one node of the old graph: `node` is that node (its id there is `id`) with its
// inputs already ids in `out`. Returns the id in `out` that replaces it: append(out,
// std::move(node)) keeps it, and the rule may add new nodes first.
using Rule = std::function<int(Graph& out, GraphNode&& node, int id)>;

// A graph made by asking `rule` about each node from `first` on but the inputs, in id order, so
// that ids stay in topological order; the nodes before `first` stay as they are, where they are
// (a pass that changes only the end of a ~10^5-node step need not move the rest). Inputs are
// kept, in order. Outputs and stores are renamed. The graph is taken by value: it becomes the
// new one. `added`: how many nodes the rule adds at most, where a pass knows and they may be more
// than an eighth of the graph (growing the node array moves every node again).
Graph rebuild(Graph graph, const Rule& rule, int first = 0, size_t added = 0);

// ---- in place -----------------------------------------------------------------------------------

// Turns op node `id` into a constant holding `value`, of the same shape and dtype. Its inputs stay
// in the graph, for dead-code elimination to remove once nothing reads them.
void become_constant(Graph& graph, int id, Tensor value);

// Asks `same_value(graph, node, id)` about each node but the inputs, in id order, the node's inputs
// already moved to their replacements: it returns an earlier node with the same value, or the
// node's own id (maybe after making it a cheaper op with the same value). The readers of a replaced
// node, and the outputs and stores, then read its replacement; the node itself is left unread,
// for dead-code elimination.
template <typename SameValue>
Graph redirect(Graph graph, const SameValue& same_value) {
  std::vector<int> same_as(graph.nodes().size());
  std::iota(same_as.begin(), same_as.end(), 0);
  for (size_t id = 0; id < graph.nodes().size(); ++id) {
    GraphNode& node = graph.nodes()[id];
    if (node.kind == GraphNode::Kind::input) continue;
    for (int& input : node.inputs) input = same_as[input];
    same_as[id] = same_value(graph, node, static_cast<int>(id));
    // A replacement with another shape or dtype is a bug in the pass: catch it here.
    const TensorSpec& spec = graph.node(same_as[id]).spec;
    WEFT_CHECK(spec.shape == node.spec.shape && spec.dtype == node.spec.dtype,
               "passes: node %{} ({} {}) replaced by a {} {} value", id,
               dtype_name(node.spec.dtype), shape_str(node.spec.shape), dtype_name(spec.dtype),
               shape_str(spec.shape));
  }
  for (GraphOutput& output : graph.outputs) output.node = same_as[output.node];
  for (GraphStore& store : graph.stores) store.value = same_as[store.value];
  return graph;
}

}  // namespace weft
