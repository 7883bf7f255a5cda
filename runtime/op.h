// The definition of a primitive op, and apply(): the one place where ops run and are recorded.
//
// An op is one OpDef in ops/: a name, a shape rule that checks its arguments, an eager CPU
// kernel, and a vector-Jacobian product written in other ops (so the backward pass can itself
// be recorded). Its lowering to LLVM IR is registered next to it, in a table of its own
// (ops/lowering.h): nothing here sees LLVM. Composite ops are plain functions of primitives and
// have no OpDef.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "weft/runtime/tensor.h"

namespace weft {

using AttrValue = std::variant<int64_t, double, std::vector<int64_t>>;

// An op's non-tensor arguments, by name (axes, bounds, seeds...).
class Attrs {
 public:
  Attrs() = default;
  Attrs(std::initializer_list<std::pair<std::string_view, AttrValue>> items) : items_(items) {}

  int64_t integer(std::string_view name) const { return std::get<int64_t>(find(name)); }
  double real(std::string_view name) const { return std::get<double>(find(name)); }
  const std::vector<int64_t>& integers(std::string_view name) const {
    return std::get<std::vector<int64_t>>(find(name));
  }
  const std::vector<std::pair<std::string_view, AttrValue>>& items() const { return items_; }
  // "axis=1, start=0, stop=4"
  std::string to_string() const;
  // Of the values (names are fixed per op): equal attrs hash equal.
  size_t hash() const;
  bool operator==(const Attrs&) const = default;

 private:
  const AttrValue& find(std::string_view name) const;
  std::vector<std::pair<std::string_view, AttrValue>> items_;
};

struct TensorSpec {
  Shape shape;
  DType dtype;
};

// Where an op's output lies in its input 0: [start, stop) along `axis`, all of every other axis.
struct OutputRegion {
  int64_t axis, start, stop;
};

struct VjpContext {
  std::span<const Tensor> inputs;
  const Tensor& output;
  const Tensor& grad;  // d loss / d output
  const Attrs& attrs;
  std::span<const bool> needs_grad;  // which inputs want a gradient
};

struct OpDef {
  std::string_view name;
  // Checks the arguments; returns the output's shape and dtype. Throws weft::Error naming the op.
  TensorSpec (*infer)(std::span<const Tensor> inputs, const Attrs& attrs);
  // Eager CPU kernel: a fresh tensor of the inferred spec, or a view of an input.
  Tensor (*forward)(std::span<const Tensor> inputs, const Attrs& attrs, const TensorSpec& spec);
  // d loss / d input for each input (undefined where needs_grad is false). Null for ops that
  // have no gradient (comparisons, random masks): their outputs never require grad.
  std::vector<Tensor> (*vjp)(const VjpContext& context);
  // Optional, for ops whose output is one region of input 0 (slice): that region, from the attrs.
  // The backward pass then places their gradients into input 0's rather than padding each with
  // zeros to input 0's shape (vjp): added in place when the backward is not recorded, joined with
  // the other regions into one concat when it is. The gradients of T slices of one tensor then
  // cost T slices' worth of work, not T whole tensors.
  OutputRegion (*output_region)(const Attrs& attrs) = nullptr;
};

// Registers an op definition for the whole process; returns the stored definition.
const OpDef& register_op(const OpDef& definition);
// Every registered primitive, in registration order.
std::vector<const OpDef*> registered_ops();
const OpDef* find_op(std::string_view name);

// Runs an op eagerly (or, under a tracer that computes no values, only infers its result's shape
// and dtype) and, when gradients are enabled and an input requires one, records it: through the
// grad recorder (below) for differentiation, and through this thread's tracer, if any.
Tensor apply(const OpDef& op, std::vector<Tensor> inputs, Attrs attrs = {});

// How apply() records an op for reverse-mode differentiation: the node that becomes the output's
// grad_fn. The tape (autodiff/tape.cpp) installs its own when the library loads, so this layer
// knows Node only by name.
using GradRecorder = std::shared_ptr<Node> (*)(const OpDef& op, Attrs attrs,
                                               std::vector<Tensor> inputs, const Tensor& output);
// Installs the process's grad recorder; returns true, for a namespace-scope constant to hold.
bool install_grad_recorder(GradRecorder recorder);

// Observes every op that apply() runs on this thread, whatever the grad mode, and every
// in-place assign_: the compiler's capture of a whole step (forward, backward, update).
class Tracer {
 public:
  virtual ~Tracer() = default;
  // False for a tracer that records ops without running them: apply() then returns meta tensors
  // (Tensor::is_meta) and assign_ writes nothing, so the step computes and changes nothing.
  virtual bool computes_values() const { return true; }
  virtual void on_op(const OpDef& op, std::span<const Tensor> inputs, const Attrs& attrs,
                     const Tensor& output) = 0;
  virtual void on_assign(const Tensor& target, const Tensor& source) = 0;
  // `source` written into `target` as the step ends, where every read of `target` within the step,
  // even a later one, sees the value it started with: a stateful layer's next states, stored
  // after the forward pass, while the backward pass recorded after it reads the states it began
  // from.
  virtual void on_store_at_end(const Tensor& target, const Tensor& source) = 0;
  // copy() makes a tensor without an op: to a tracer it holds its source's value.
  virtual void on_copy(const Tensor& source, const Tensor& copy) = 0;
};
// The tracer of this thread (null when none).
Tracer* active_tracer();
// True while this thread's tracer computes no values (Tracer::computes_values).
bool meta_capture_active();
// Installs a tracer on this thread for the scope's lifetime.
class TracingScope {
 public:
  explicit TracingScope(Tracer& tracer);
  ~TracingScope();
  TracingScope(const TracingScope&) = delete;
  TracingScope& operator=(const TracingScope&) = delete;

 private:
  Tracer* previous_;
};

// Gradient recording is on by default; a NoGrad scope turns it off on this thread.
bool grad_enabled();
class NoGrad {
 public:
  NoGrad();
  ~NoGrad();
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  bool previous_;
};

}  // namespace weft
