// Graph: a captured step as a list of nodes in execution order. Every node yields one value;
// inputs are the step's arguments (data, parameters, optimizer state), constants are tensors
// made inside the step (scalars, zero states), ops are primitive applications with their attrs.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "weft/runtime/huge_pages.h"
#include "weft/runtime/op.h"

namespace weft {

struct GraphNode {
  enum class Kind { input, constant, op };
  Kind kind = Kind::op;
  const OpDef* op = nullptr;  // for ops
  Attrs attrs = {};
  std::vector<int> inputs = {};  // node ids, all smaller than this node's id
  TensorSpec spec = {};
  std::string name = {};  // for inputs: the name given to capture
  Tensor value = {};      // for constants
};

// A value the step writes back into an input when it ends (a parameter update).
struct GraphStore {
  int input;  // the input node
  int value;  // the node whose value it receives
};

struct GraphOutput {
  std::string name;
  int node;
};

// A step's nodes: ~10^5 of them, ~10 MB, at long sequences; each rebuilding pass makes a new array.
using GraphNodes = std::vector<GraphNode, HugePageAllocator<GraphNode>>;

class Graph {
 public:
  int add_input(std::string name, TensorSpec spec);
  int add_constant(const Tensor& value);
  int add_op(const OpDef& op, Attrs attrs, std::vector<int> inputs, TensorSpec spec);

  const GraphNodes& nodes() const { return nodes_; }
  GraphNodes& nodes() { return nodes_; }
  const GraphNode& node(int id) const { return nodes_.at(id); }
  std::vector<GraphOutput> outputs;
  std::vector<GraphStore> stores;

  // Ids of the input nodes in the order they were added: the step's calling convention.
  std::vector<int> input_ids() const;
  int input_id(const std::string& name) const;  // throws weft::Error when absent

  // One line per node: "%7 = matmul(%3, %5) : float32 (32, 256)".
  std::string to_text() const;
  // Graphviz: inputs as boxes, constants as notes, ops as ellipses.
  std::string to_dot() const;

 private:
  GraphNodes nodes_;
};

enum class CaptureMode {
  // Every op runs as it is recorded: the step's results and in-place writes happen as they would
  // without the capture, and every value it makes stays alive until the capture ends.
  eager,
  // Ops are recorded, not run: their results are meta tensors (shape and dtype, no data; reading
  // one throws weft::Error naming its op) and assign_ writes nothing. The step computes nothing
  // and changes no input; only tensors made outside ops (constants) hold values.
  meta,
};

// Runs `step` with a tracer installed and returns what it did as a graph. `inputs` are the
// step's named arguments (matched by identity). Tensors made during the step and used without
// being produced by an op become constants; a tensor that existed before the capture and is not
// an input is an error (it would be frozen into the step). `step` returns the named outputs.
Graph capture(const std::vector<std::pair<std::string, Tensor>>& inputs,
              const std::function<std::vector<std::pair<std::string, Tensor>>()>& step,
              CaptureMode mode = CaptureMode::eager);

// Runs the graph with the eager kernels: the reference the compiled code is tested against.
// `inputs` follow input_ids(); returns the outputs' values, and applies the stores to `inputs`.
std::vector<Tensor> evaluate(const Graph& graph, const std::vector<Tensor>& inputs);

}  // namespace weft
