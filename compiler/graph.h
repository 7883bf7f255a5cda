// Graph: a captured step as a list of nodes in execution order. Every node yields one value;
// inputs are the step's arguments (data, parameters, optimizer state), constants are tensors
// made inside the step (scalars, zero states), ops are primitive applications with their attrs.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "weft/runtime/huge_pages.h"
#include "weft/runtime/op.h"

namespace weft {

// A node's input ids, held in the node itself up to kInline of them, as nearly every op needs (a
// concat of every time step takes more, on the heap). A step's ~10^5 nodes then allocate nothing
// each for their inputs, and a pass reading every node's inputs finds them in the node array, not
// in a heap block per node (the passes at T=400: 41-45 ms with std::vector, 31-40 with these).
class NodeInputs {
 public:
  static constexpr uint32_t kInline = 4;

  NodeInputs() = default;
  NodeInputs(std::initializer_list<int> ids) : NodeInputs(ids.begin(), ids.end()) {}
  template <std::input_iterator Iterator>
  NodeInputs(Iterator first, Iterator last) {
    for (; first != last; ++first) push_back(*first);
  }
  NodeInputs(const NodeInputs& other) : NodeInputs(other.begin(), other.end()) {}
  NodeInputs(NodeInputs&& other) noexcept { take(other); }
  NodeInputs& operator=(const NodeInputs& other) {
    if (this != &other) {
      clear();
      for (int id : other) push_back(id);
    }
    return *this;
  }
  NodeInputs& operator=(NodeInputs&& other) noexcept {
    if (this != &other) {
      release();
      take(other);
    }
    return *this;
  }
  ~NodeInputs() { release(); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  int* begin() { return data(); }
  int* end() { return data() + size_; }
  const int* begin() const { return data(); }
  const int* end() const { return data() + size_; }
  std::reverse_iterator<const int*> rbegin() const { return std::reverse_iterator(end()); }
  std::reverse_iterator<const int*> rend() const { return std::reverse_iterator(begin()); }
  int& operator[](size_t i) { return data()[i]; }
  int operator[](size_t i) const { return data()[i]; }
  void push_back(int id) {
    if (size_ == capacity_) grow();
    data()[size_++] = id;
  }
  void clear() { size_ = 0; }
  friend bool operator==(const NodeInputs& a, const NodeInputs& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  int* data() { return heap_ != nullptr ? heap_ : inline_; }
  const int* data() const { return heap_ != nullptr ? heap_ : inline_; }
  void grow() {
    const uint32_t capacity = capacity_ * 2;
    int* heap = new int[capacity];
    std::copy(begin(), end(), heap);
    delete[] heap_;
    heap_ = heap;
    capacity_ = capacity;
  }
  void take(NodeInputs& other) {
    heap_ = std::exchange(other.heap_, nullptr);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, kInline);
    if (heap_ == nullptr) std::copy(other.inline_, other.inline_ + size_, inline_);
  }
  void release() {
    delete[] heap_;
    heap_ = nullptr;
    size_ = 0;
    capacity_ = kInline;
  }

  int* heap_ = nullptr;
  uint32_t size_ = 0;
  uint32_t capacity_ = kInline;
  int inline_[kInline] = {};
};

struct GraphNode {
  enum class Kind { input, constant, op };
  Kind kind = Kind::op;
  const OpDef* op = nullptr;  // for ops
  Attrs attrs = {};
  NodeInputs inputs = {};  // node ids, all smaller than this node's id
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
