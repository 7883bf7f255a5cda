#include "weft/compiler/rewrite.h"

namespace weft {

int append(Graph& out, GraphNode node) {
  out.nodes().push_back(std::move(node));
  return static_cast<int>(out.nodes().size()) - 1;
}

Graph rebuild(Graph graph, const Rule& rule) {
  Graph out;
  std::vector<int> renamed(graph.nodes().size());
  out.nodes().reserve(graph.nodes().size());
  Shape expected_shape;  // one buffer for every node: this runs for each node of each pass
  for (size_t i = 0; i < graph.nodes().size(); ++i) {
    const bool is_input = graph.nodes()[i].kind == GraphNode::Kind::input;
    GraphNode node = std::move(graph.nodes()[i]);
    for (int& input : node.inputs) input = renamed[input];
    if (is_input) {
      renamed[i] = append(out, std::move(node));
      continue;
    }
    const DType expected_dtype = node.spec.dtype;
    expected_shape.assign(node.spec.shape.begin(), node.spec.shape.end());
    renamed[i] = rule(out, std::move(node), static_cast<int>(i));
    // A replacement with another shape or dtype is a bug in the pass: catch it here.
    const TensorSpec& spec = out.node(renamed[i]).spec;
    WEFT_CHECK(spec.shape == expected_shape && spec.dtype == expected_dtype,
               "rebuild: node %{} ({} {}) replaced by a {} {} value", i, dtype_name(expected_dtype),
               shape_str(expected_shape), dtype_name(spec.dtype), shape_str(spec.shape));
  }
  for (const GraphOutput& output : graph.outputs)
    out.outputs.push_back({output.name, renamed[output.node]});
  for (const GraphStore& store : graph.stores)
    out.stores.push_back({.input = renamed[store.input], .value = renamed[store.value]});
  return out;
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
