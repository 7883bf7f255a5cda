// Lowering: how an op becomes LLVM IR. Each op's lowering is defined next to it in ops/ and
// registered in the table below; the compiler's stages (compiler/compile.h) decide where values
// live and call them. An op has exactly one kind of lowering (element, view, regions or kernel:
// the variant's alternatives below).
#pragma once

#include <llvm/ADT/SmallVector.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Module.h>

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <variant>

#include "weft/runtime/op.h"
#include "weft/runtime/overloaded.h"

namespace weft {

// A layout's sizes or strides: held inline up to rank 6. A step's compile makes ~10^5 layouts,
// and as std::vectors their allocations were most of the fuse stage's time.
using Dims = llvm::SmallVector<int64_t, 6>;
inline Dims to_dims(const Shape& shape) { return Dims(shape.begin(), shape.end()); }
inline Shape to_shape(const Dims& dims) { return Shape(dims.begin(), dims.end()); }
inline bool same_dims(const Dims& dims, const Shape& shape) {
  return std::equal(dims.begin(), dims.end(), shape.begin(), shape.end());
}

// A strided layout over a buffer, in elements.
struct Layout {
  Dims shape;
  Dims strides;  // 0 on broadcast dimensions
  int64_t offset = 0;
};

// An operand or result inside a kernel: the address of its element (0, ..., 0) and its strides.
struct Access {
  llvm::Value* data;
  Shape shape;
  Shape strides;
  DType dtype;
};

// The IR-building help a lowering gets: types, constants, loops, loads and stores through a
// layout, the fast float math shared with the eager kernels, and runtime failure.
class KernelBuilder {
 public:
  KernelBuilder(llvm::IRBuilder<>& builder, llvm::Module& module, llvm::BasicBlock* fail_block);

  llvm::IRBuilder<>& b;
  llvm::Module& module;

  llvm::Type* type(DType dtype) const;
  llvm::Value* constant(DType dtype, double value) const;
  llvm::Value* i64(int64_t value) const;

  // The address of element `index` (one value per dimension) of `access`.
  llvm::Value* address(const Access& access, std::span<llvm::Value* const> index);
  llvm::Value* load(const Access& access, std::span<llvm::Value* const> index);
  void store(const Access& access, std::span<llvm::Value* const> index, llvm::Value* value);

  // Emits a counted loop 0 <= i < n around what `body` emits. With `interleave` > 1, the
  // vectoriser interleaves that many vector iterations (llvm.loop.interleave.count).
  void loop(int64_t n, const std::function<void(llvm::Value* i)>& body, int interleave = 0);
  // Nested loops over every index of `shape`, the last dimension innermost (and interleaved so).
  // `before_innermost`, when given, runs once per outer index, before the innermost loop.
  void for_each(const Shape& shape, const std::function<void(std::span<llvm::Value* const>)>& body,
                int interleave = 0,
                const std::function<void(std::span<llvm::Value* const>)>& before_innermost = {});

  // When `condition` holds at run time, records `message` (a fmt format string with one {} for
  // `value`) for jit_take_runtime_error() and ends the step with a failure status.
  void fail_if(llvm::Value* condition, const std::string& message, llvm::Value* value);
  // When a runtime shim returned a non-zero `status` (it recorded its own message, as the GEMM
  // shims do), ends the step with a failure status, keeping that message.
  void fail_on_status(llvm::Value* status);

  // Calls a C function by name (libm, or a runtime shim of jit.h).
  llvm::Value* call(const char* name, llvm::Type* result, std::span<llvm::Value* const> args);

  // Conversion between element types with C++'s static_cast semantics.
  llvm::Value* convert(llvm::Value* value, DType from, DType to);
  // float32: the polynomials of runtime/fast_math.h, operation for operation (so results match
  // the eager kernels bit for bit and loops vectorise); float64: libm, as the eager kernels.
  llvm::Value* exp(DType dtype, llvm::Value* x);
  llvm::Value* tanh(DType dtype, llvm::Value* x);
  llvm::Value* sigmoid(DType dtype, llvm::Value* x);

 private:
  // fast::exp_parts: the scale 2^n and q = exp(r) - 1, with exp(x) = scale (1 + q).
  std::pair<llvm::Value*, llvm::Value*> fast_exp_parts(llvm::Value* x);
  llvm::Value* fast_exp(llvm::Value* x);
  // x * y + addend for float32 as fast::mul_add computes it: one rounding where that fuses.
  llvm::Value* fast_mul_add(llvm::Value* x, llvm::Value* y, llvm::Value* addend);
  llvm::BasicBlock* fail_block_;
};

struct ElementCall {
  std::span<llvm::Value* const> args;  // the operands' element values
  std::span<const DType> arg_dtypes;
  DType dtype;  // the result's
  const Attrs& attrs;
};

// The kinds of lowering; an op has exactly one (Lowering is their variant).
//
// element: the value of one output element from its operands' values at that element. The
// compiler fuses chains of these into one loop that keeps intermediates in registers.
struct ElementLowering {
  llvm::Value* (*emit)(KernelBuilder& k, const ElementCall& call);
};

// view: no code; consumers read the input's buffer through the output's layout.
struct ViewLowering {
  // Rewrites `layout` (the input's) into the output's; false when the input must be made
  // contiguous first (reshape of a strided view).
  bool (*layout)(Layout& layout, const Attrs& attrs, const TensorSpec& output);
  // The same elements in the same order under another shape (reshape): a value may be written
  // through the view as well as read.
  bool reshapes = false;
};

// regions: the op only places each input into a region of its output (concat). The compiler
// computes each input in its region where it can, and copies it there otherwise.
struct RegionsLowering {
  // The region of the output that input `index` fills, as a layout over the output's buffer.
  Layout (*region)(size_t index, const Layout& output, const Attrs& attrs,
                   std::span<const Shape> input_shapes);
};

// kernel: everything else (matmul, reductions, indexing, random masks): code that reads strided
// inputs and writes a fresh output.
struct KernelLowering {
  // Emits the op: reads `inputs`, writes every element of `output` (contiguous, or a layout
  // `writes` accepts).
  void (*emit)(KernelBuilder& k, std::span<const Access> inputs, const Access& output,
               const Attrs& attrs);
  // For kernels that need a particular layout of an operand (matmul: a GEMM-readable matrix):
  // whether input `index` can be read as `layout`; the compiler copies it to a contiguous
  // buffer otherwise. Null: any layout.
  bool (*reads)(size_t index, const Layout& layout) = nullptr;
  // For kernels that can write their output through strides (matmul: rows at any leading
  // dimension), so that it goes straight into a region of a concat: whether `layout` is such.
  // Null: contiguous only.
  bool (*writes)(const Layout& layout) = nullptr;
  // Whether the kernel adds a row (one more input, of as many values as the output's last
  // dimension) to every row of its output as it stores it: an add of a matmul and a bias
  // broadcast down its rows then costs no loop of its own (compiler/fuse.cpp).
  bool adds_row = false;
};

struct Lowering : std::variant<ElementLowering, ViewLowering, RegionsLowering, KernelLowering> {
  using variant::variant;
};

// The layout of a contiguous row-major tensor of `shape`.
Layout contiguous_layout(std::span<const int64_t> shape);
bool is_contiguous(const Layout& layout);
// `layout` read at every index of `shape` (NumPy broadcasting: stride 0 where it is stretched).
Layout broadcast_to(const Layout& layout, const Shape& shape);
// The same elements, in the same order, read as `shape` without moving them (reshaped_strides);
// none when the strides cannot.
std::optional<Layout> reshaped(const Layout& layout, const Shape& shape);

// The lowering table. Each op's file registers the op's lowering right after the op (as JAX's
// mlir.register_lowering(exp_p, ...) beside exp_p), so OpDef knows nothing of LLVM. The table
// keeps `lowering` by address: it must live as long as the process (a namespace-scope constant).
// Returns true, for a namespace-scope constant to hold; throws weft::Error for a second one.
bool register_lowering(const OpDef& op, const Lowering& lowering);
// The op's registered lowering; null when it has none.
const Lowering* find_lowering(const OpDef& op);

}  // namespace weft
