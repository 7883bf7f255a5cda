// Lowering of elementwise graphs to one fused LLVM loop. Every op node must be an elementwise
// primitive (add, sub, mul, div, neg, exp, log, tanh, sigmoid, relu, sqrt, the comparisons) over
// values of one common shape, or 0-d scalars broadcast against it, all of one floating dtype.
// The emitted function computes every op per element in registers and writes each graph output:
//
//   void step(void** buffers, int64_t n)
//
// with buffers = the graph's inputs (input_ids() order), then its outputs (graph order), then the
// non-scalar constants (held by the CompiledGraph); 0-d constants become immediates.
// float32 exp/sigmoid/tanh are the polynomials of runtime/fast_math.h (so the loop vectorises and
// matches the eager kernels); float64 ones call libm, as the eager kernels do.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "weft/autodiff/tensor.h"
#include "weft/compiler/graph.h"
#include "weft/compiler/jit.h"

namespace weft {

class CompiledGraph {
 public:
  using StepFn = void(void** buffers, int64_t n);

  // Checks the inputs against the graph's (shape and dtype), allocates the outputs and runs the
  // compiled loop. Non-contiguous inputs are copied first.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs) const;

  const CompiledModule& module() const { return module_; }
  StepFn* step() const { return step_; }
  const Shape& shape() const { return shape_; }  // the common shape of the loop
  DType dtype() const { return dtype_; }

 private:
  friend CompiledGraph compile_elementwise(const Graph& graph, Jit& jit, const std::string& name);
  CompiledGraph(CompiledModule module, StepFn* fn) : module_(std::move(module)), step_(fn) {}

  CompiledModule module_;
  StepFn* step_;
  Shape shape_;
  DType dtype_ = DType::f32;
  std::vector<std::string> input_names_;
  std::vector<Shape> input_shapes_;
  std::vector<Shape> output_shapes_;
  std::vector<Tensor> constants_;  // the non-scalar constants, after the outputs in buffers
};

// Compiles `graph` into `jit` as one fused loop (module label `name`). Throws weft::Error naming
// the node and the reason for anything outside the elementwise subset: another op, broadcasting
// other than from 0-d scalars, mixed or non-floating dtypes, stores. There is no fallback.
CompiledGraph compile_elementwise(const Graph& graph, Jit& jit,
                                  const std::string& name = "elementwise");

}  // namespace weft
