// The define-by-run tape: each recorded op is a Node that points at its inputs, and backward
// walks the nodes reachable from the output in reverse order of recording.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "weft/runtime/op.h"

namespace weft {

class Node {
 public:
  Node(const OpDef& op, Attrs attrs, std::vector<Tensor> inputs, const Tensor& output);
  // Tears down the graph above this node with a loop, not one nested destructor per node, so
  // dropping a long unfreed chain cannot overflow the stack.
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const OpDef& op() const { return *op_; }
  const Attrs& attrs() const { return attrs_; }
  const std::vector<Tensor>& inputs() const { return inputs_; }
  // Order of recording: a node's inputs were always recorded before it.
  uint64_t sequence() const { return sequence_; }
  // Throws weft::Error naming the op when an earlier backward freed this node.
  void check_not_released() const;

  // Input gradients for the output gradient `grad`; throws if the graph was freed or a saved
  // tensor was modified in place since it was recorded.
  std::vector<Tensor> vjp(const Tensor& grad) const;
  // Drops the saved tensors once backward no longer needs them.
  void release();

 private:
  // The output, after checking that the graph is intact (not freed, nothing modified in place).
  Tensor checked_output() const;
  const OpDef* op_;
  Attrs attrs_;
  std::vector<Tensor> inputs_;
  std::vector<uint64_t> input_versions_;
  // Weak: the output owns this node through grad_fn. Whenever backward reaches the node, the
  // output is alive (it is the root, or an input saved by a later node).
  std::weak_ptr<TensorImpl> output_;
  uint64_t output_version_;
  uint64_t sequence_;
  bool released_ = false;
};

// d sum(outputs[i] * seeds[i]) / d inputs[j], without touching any tensor's grad(). With
// create_graph the returned gradients are themselves recorded (gradients of gradients).
// An input that the outputs do not depend on gets a zero gradient.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& seeds = {}, BackwardOptions options = {});

// Accumulates d sum(roots[i] * seeds[i]) / d leaf into every leaf's grad().
void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& seeds = {},
              BackwardOptions options = {});

}  // namespace weft
