#include "weft/compiler/rewrite.h"

#include <algorithm>
#include <iterator>
#include <numeric>

namespace weft {

int append(Graph& out, GraphNode node) {
  out.nodes().push_back(std::move(node));
  return static_cast<int>(out.nodes().size()) - 1;
}

Graph rebuild(Graph graph, const Rule& rule, int first, size_t added) {
  GraphNodes& nodes = graph.nodes();
  const auto start = static_cast<size_t>(std::clamp<int>(first, 0, static_cast<int>(nodes.size())));
  GraphNodes rest(
      std::make_move_iterator(nodes.begin() + static_cast<ptrdiff_t>(start)),
      std::make_move_iterator(nodes.end()));
  nodes.erase(nodes.begin() + static_cast<ptrdiff_t>(start), nodes.end());
  // With room for the nodes a pass adds: growing past the reserve would move every node again.
  nodes.reserve(start + rest.size() + std::max(rest.size() / 8 + 64, added));
  std::vector<int> renamed(start + rest.size());
  std::iota(renamed.begin(), renamed.begin() + static_cast<ptrdiff_t>(start), 0);
  Shape expected_shape;  // one buffer for every node: this runs for each node of each pass
  for (size_t i = start; i < renamed.size(); ++i) {
    GraphNode node = std::move(rest[i - start]);
    for (int& input : node.inputs) input = renamed[input];
    if (node.kind == GraphNode::Kind::input) {
      renamed[i] = append(graph, std::move(node));
      continue;
    }
    const DType expected_dtype = node.spec.dtype;
    expected_shape.assign(node.spec.shape.begin(), node.spec.shape.end());
    renamed[i] = rule(graph, std::move(node), static_cast<int>(i));
    // A replacement with another shape or dtype is a bug in the pass: catch it here.
    const TensorSpec& spec = graph.node(renamed[i]).spec;
    WEFT_CHECK(spec.shape == expected_shape && spec.dtype == expected_dtype,
               "rebuild: node %{} ({} {}) replaced by a {} {} value", i, dtype_name(expected_dtype),
               shape_str(expected_shape), dtype_name(spec.dtype), shape_str(spec.shape));
  }
  for (GraphOutput& output : graph.outputs) output.node = renamed[output.node];
  for (GraphStore& store : graph.stores)
    store = {.input = renamed[store.input], .value = renamed[store.value]};
  return graph;
}

void become_constant(Graph& graph, int id, Tensor value) {
  GraphNode& node = graph.nodes()[id];
  WEFT_CHECK(value.shape() == node.spec.shape && value.dtype() == node.spec.dtype,
             "passes: node %{} ({} {}) replaced by a {} {} constant", id,
             dtype_name(node.spec.dtype), shape_str(node.spec.shape), dtype_name(value.dtype()),
             shape_str(value.shape()));
  node.kind = GraphNode::Kind::constant;
  node.op = nullptr;
  node.attrs = {};
  node.inputs.clear();
  node.value = std::move(value);  // maybe a view of another constant: constants are never written
}

}  // namespace weft
