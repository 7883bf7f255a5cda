// Reductions: sum and max over axes (with gradients), argmax (without).
#include <algorithm>
#include <limits>

#include "weft/ops/definitions.h"
#include "weft/ops/kernels.h"
#include "weft/ops/lowering.h"
#include "weft/ops/ops.h"
#include "weft/runtime/op.h"

namespace weft {
namespace {

using Grads = std::vector<Tensor>;

// Sorted, unique, non-negative axes; all axes when none are given.
std::vector<int64_t> normalize_axes(std::string_view op, const std::vector<int64_t>& axes,
                                    int64_t ndim) {
  std::vector<int64_t> out;
  for (int64_t axis : axes) out.push_back(normalize_axis(op, axis, ndim));
  if (axes.empty())
    for (int64_t axis = 0; axis < ndim; ++axis) out.push_back(axis);
  std::sort(out.begin(), out.end());
  WEFT_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(),
             "{}: axis listed twice in [{}]", op, fmt::join(axes, ", "));
  return out;
}

Shape kept_shape(const Shape& shape, const std::vector<int64_t>& axes) {
  Shape kept = shape;
  for (int64_t axis : axes) kept[axis] = 1;
  return kept;
}

Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& axes, bool keepdims) {
  if (keepdims) return kept_shape(shape, axes);
  Shape out;
  for (size_t d = 0; d < shape.size(); ++d)
    if (!std::binary_search(axes.begin(), axes.end(), static_cast<int64_t>(d)))
      out.push_back(shape[d]);
  return out;
}

// A stack slot in the function's entry block (where SROA turns it into a register).
llvm::Value* entry_slot(KernelBuilder& k, llvm::Type* type) {
  llvm::BasicBlock& entry = k.b.GetInsertBlock()->getParent()->getEntryBlock();
  llvm::IRBuilder<> at_entry(&entry, entry.begin());
  return at_entry.CreateAlloca(type);
}

// Splits an input index into the kept dimensions (outer loops) and the reduced ones (inner).
struct ReductionLoops {
  Shape kept_sizes, reduced_sizes;
  std::vector<size_t> kept_axes, reduced_axes;
  ReductionLoops(const Shape& shape, const std::vector<int64_t>& axes) {
    for (size_t d = 0; d < shape.size(); ++d) {
      const bool reduced = std::binary_search(axes.begin(), axes.end(), static_cast<int64_t>(d));
      (reduced ? reduced_sizes : kept_sizes).push_back(shape[d]);
      (reduced ? reduced_axes : kept_axes).push_back(d);
    }
  }
};

// The accumulators of a column reduction: this many consecutive outputs at a time, in float64.
constexpr int64_t kColumnBlock = 64;
// A column reduction over one dimension folds this many rows into every block of outputs in turn
// while they are in cache, so that the input is read from memory once (block by block down the
// whole column, a 256-wide bias gradient read it four times, a quarter of every line each time).
// The outputs' running values wait in a stack array between slabs, when the row is this short.
constexpr int64_t kColumnSlabRows = 32;
constexpr int64_t kMaxSlabbedWidth = 4096;

// Each output element folds its inputs in float64, as the eager kernel does, then rounds once.
// When the input's last dimension is kept and contiguous (a bias gradient: a sum over rows), a
// block of consecutive outputs is folded together, row after row, so that the loads are
// contiguous vectors; each output still folds its inputs in the same order, so the results are
// the same bits as folding one output at a time (which strides down a column, a load a line).
template <typename Fold>
void emit_reduction(KernelBuilder& k, std::span<const Access> in, const Access& out,
                    const Attrs& attrs) {
  const Access& x = in[0];
  const ReductionLoops loops(x.shape, attrs.integers("axes"));
  const Access target{out.data, loops.kept_sizes, contiguous_strides(loops.kept_sizes), out.dtype};
  llvm::Type* f64 = k.b.getDoubleTy();
  const auto input_index = [&](std::span<llvm::Value* const> kept,
                               std::span<llvm::Value* const> reduced) {
    std::vector<llvm::Value*> index(x.shape.size());
    for (size_t i = 0; i < kept.size(); ++i) index[loops.kept_axes[i]] = kept[i];
    for (size_t i = 0; i < reduced.size(); ++i) index[loops.reduced_axes[i]] = reduced[i];
    return index;
  };
  const bool columns = !loops.kept_axes.empty() && !loops.reduced_axes.empty() &&
                       loops.kept_axes.back() == x.shape.size() - 1 && x.strides.back() == 1 &&
                       x.shape.back() > 0;
  if (!columns) {
    llvm::Value* acc = entry_slot(k, f64);
    k.for_each(loops.kept_sizes, [&](std::span<llvm::Value* const> outer) {
      k.b.CreateStore(llvm::ConstantFP::get(f64, Fold::initial), acc);
      k.for_each(loops.reduced_sizes, [&](std::span<llvm::Value* const> inner) {
        llvm::Value* v = k.convert(k.load(x, input_index(outer, inner)), x.dtype, DType::f64);
        k.b.CreateStore(Fold::lower(k, k.b.CreateLoad(f64, acc), v), acc);
      });
      k.store(target, outer, k.convert(k.b.CreateLoad(f64, acc), DType::f64, out.dtype));
    });
    return;
  }
  const int64_t width = loops.kept_sizes.back();
  const int64_t block = std::min(width, kColumnBlock);
  llvm::Type* block_type = llvm::ArrayType::get(f64, static_cast<uint64_t>(block));
  llvm::Value* acc = entry_slot(k, block_type);
  const auto slot = [&](llvm::Value* j) {
    return k.b.CreateInBoundsGEP(block_type, acc, {k.i64(0), j});
  };
  const bool slabs = loops.reduced_sizes.size() == 1 && width <= kMaxSlabbedWidth &&
                     loops.reduced_sizes[0] > kColumnSlabRows && width > block;
  llvm::Type* row_type = llvm::ArrayType::get(f64, static_cast<uint64_t>(slabs ? width : 1));
  llvm::Value* running = slabs ? entry_slot(k, row_type) : nullptr;
  const auto running_slot = [&](llvm::Value* j) {
    return k.b.CreateInBoundsGEP(row_type, running, {k.i64(0), j});
  };
  const Shape outer_sizes(loops.kept_sizes.begin(), loops.kept_sizes.end() - 1);
  k.for_each(outer_sizes, [&](std::span<llvm::Value* const> outer) {
    // Output first + j of the row `outer`: its column, and its index among the kept dimensions.
    const auto column = [&](llvm::Value* first, llvm::Value* j) {
      return k.b.CreateAdd(first, j, "", true, true);
    };
    const auto kept = [&](llvm::Value* first, llvm::Value* j) {
      std::vector<llvm::Value*> index(outer.begin(), outer.end());
      index.push_back(column(first, j));
      return index;
    };
    // Output first + j of the block (in slot j) folds input `inner` of its column.
    const auto fold_into_block = [&](llvm::Value* first, llvm::Value* j,
                                     std::span<llvm::Value* const> inner) {
      llvm::Value* v =
          k.convert(k.load(x, input_index(kept(first, j), inner)), x.dtype, DType::f64);
      k.b.CreateStore(Fold::lower(k, k.b.CreateLoad(f64, slot(j)), v), slot(j));
    };
    // Calls `each(first, count)` for the blocks of outputs across the row.
    const auto for_each_block = [&](const std::function<void(llvm::Value*, int64_t)>& each) {
      k.loop(width / block, [&](llvm::Value* b) { each(k.b.CreateMul(b, k.i64(block)), block); });
      if (width % block != 0) each(k.i64(width - width % block), width % block);
    };
    if (!slabs) {
      for_each_block([&](llvm::Value* first, int64_t count) {
        k.loop(count, [&](llvm::Value* j) {
          k.b.CreateStore(llvm::ConstantFP::get(f64, Fold::initial), slot(j));
        });
        k.for_each(loops.reduced_sizes, [&](std::span<llvm::Value* const> inner) {
          k.loop(count, [&](llvm::Value* j) { fold_into_block(first, j, inner); });
        });
        k.loop(count, [&](llvm::Value* j) {
          k.store(target, kept(first, j),
                  k.convert(k.b.CreateLoad(f64, slot(j)), DType::f64, out.dtype));
        });
      });
      return;
    }
    k.loop(width, [&](llvm::Value* j) {
      k.b.CreateStore(llvm::ConstantFP::get(f64, Fold::initial), running_slot(j));
    });
    // Rows row0 .. row0 + rows - 1 into every block in turn, each block's running values in
    // registers meanwhile.
    const auto fold_slab = [&](llvm::Value* row0, int64_t rows) {
      for_each_block([&](llvm::Value* first, int64_t count) {
        k.loop(count, [&](llvm::Value* j) {
          k.b.CreateStore(k.b.CreateLoad(f64, running_slot(column(first, j))), slot(j));
        });
        k.loop(rows, [&](llvm::Value* r) {
          llvm::Value* row = k.b.CreateAdd(row0, r, "", true, true);
          k.loop(count, [&](llvm::Value* j) { fold_into_block(first, j, {&row, 1}); });
        });
        k.loop(count, [&](llvm::Value* j) {
          k.b.CreateStore(k.b.CreateLoad(f64, slot(j)), running_slot(column(first, j)));
        });
      });
    };
    const int64_t reduced = loops.reduced_sizes[0];
    k.loop(reduced / kColumnSlabRows, [&](llvm::Value* s) {
      fold_slab(k.b.CreateMul(s, k.i64(kColumnSlabRows)), kColumnSlabRows);
    });
    if (reduced % kColumnSlabRows != 0)
      fold_slab(k.i64(reduced - reduced % kColumnSlabRows), reduced % kColumnSlabRows);
    k.loop(width, [&](llvm::Value* j) {
      k.store(target, kept(k.i64(0), j),
              k.convert(k.b.CreateLoad(f64, running_slot(j)), DType::f64, out.dtype));
    });
  });
}

template <typename Fold>
const Lowering reduction_lowering = KernelLowering{.emit = emit_reduction<Fold>};

template <typename Fold>
const OpDef& reduction_op(std::vector<Tensor> (*vjp)(const VjpContext&)) {
  const OpDef& op = register_op({
      .name = Fold::name,
      .infer = [](std::span<const Tensor> in, const Attrs& attrs) -> TensorSpec {
        WEFT_CHECK(is_floating(in[0].dtype()), "{}: expects a floating-point tensor, got {}",
                   Fold::name, dtype_name(in[0].dtype()));
        return {reduced_shape(in[0].shape(), attrs.integers("axes"), attrs.integer("keepdims")),
                in[0].dtype()};
      },
      .forward =
          [](std::span<const Tensor> in, const Attrs& attrs, const TensorSpec& spec) {
            const Tensor& x = in[0];
            // Folded in float64 whatever the layout, then rounded once (as the lowering does).
            Tensor out = full(kept_shape(x.shape(), attrs.integers("axes")), Fold::initial,
                              {.dtype = DType::f64});
            dispatch_floating(spec.dtype, Fold::name, [&]<typename T>() {
              reduce_into<T, double>(out, x,
                                     [](double acc, double v) { return Fold::fold(acc, v); });
            });
            if (spec.dtype != DType::f64) out = to_dtype(out, spec.dtype);
            return make_view(out, spec.shape, contiguous_strides(spec.shape), 0);
          },
      .vjp = vjp,
  });
  register_lowering(op, reduction_lowering<Fold>);
  return op;
}

struct SumFold {
  static constexpr std::string_view name = "sum";
  static constexpr double initial = 0;
  static double fold(double acc, double v) { return acc + v; }
  static llvm::Value* lower(KernelBuilder& k, llvm::Value* acc, llvm::Value* v) {
    return k.b.CreateFAdd(acc, v);
  }
};
struct MaxFold {
  static constexpr std::string_view name = "max";
  static constexpr double initial = -std::numeric_limits<double>::infinity();
  static double fold(double acc, double v) { return v > acc || v != v ? v : acc; }
  static llvm::Value* lower(KernelBuilder& k, llvm::Value* acc, llvm::Value* v) {
    return k.b.CreateSelect(k.b.CreateOr(k.b.CreateFCmpOGT(v, acc), k.b.CreateFCmpUNO(v, v)), v,
                            acc);
  }
};

// g, with the reduced axes put back as size 1, broadcast over the input.
Tensor spread(const VjpContext& c) {
  const Shape kept = kept_shape(c.inputs[0].shape(), c.attrs.integers("axes"));
  return expand(reshape(c.grad, kept), c.inputs[0].shape());
}

}  // namespace

const OpDef& sum_op =
    reduction_op<SumFold>([](const VjpContext& c) -> Grads { return {spread(c)}; });

// The gradient goes to the maximal elements, shared equally among ties.
const OpDef& max_op = reduction_op<MaxFold>([](const VjpContext& c) -> Grads {
  const Tensor& x = c.inputs[0];
  const std::vector<int64_t>& axes = c.attrs.integers("axes");
  const Tensor peak = expand(reshape(c.output, kept_shape(x.shape(), axes)), x.shape());
  const Tensor is_max = equal(x, peak.detach());
  return {spread(c) * is_max / sum(is_max, axes, true)};
});

namespace {

// The first maximal index along the axis, as the eager kernel.
const Lowering argmax_lowering =
    KernelLowering{.emit = [](KernelBuilder& k, std::span<const Access> in, const Access& out,
                              const Attrs& attrs) {
      const Access& x = in[0];
      const auto axis = static_cast<size_t>(attrs.integer("axis"));
      llvm::Value* best = entry_slot(k, k.b.getInt64Ty());
      k.for_each(out.shape, [&](std::span<llvm::Value* const> outer) {
        std::vector<llvm::Value*> at(outer.begin(), outer.end());
        at.insert(at.begin() + static_cast<std::ptrdiff_t>(axis), k.i64(0));
        k.b.CreateStore(k.i64(0), best);
        k.loop(x.shape[axis], [&](llvm::Value* a) {
          std::vector<llvm::Value*> best_at = at;
          best_at[axis] = k.b.CreateLoad(k.b.getInt64Ty(), best);
          at[axis] = a;
          llvm::Value* v = k.load(x, at);
          llvm::Value* current = k.load(x, best_at);
          llvm::Value* greater =
              is_floating(x.dtype) ? k.b.CreateFCmpOGT(v, current) : k.b.CreateICmpSGT(v, current);
          k.b.CreateStore(k.b.CreateSelect(greater, a, best_at[axis]), best);
        });
        k.store(out, outer, k.b.CreateLoad(k.b.getInt64Ty(), best));
      });
    }};

}  // namespace

const OpDef& argmax_op = register_op({
    .name = "argmax",
    .infer = [](std::span<const Tensor> in, const Attrs& attrs) -> TensorSpec {
      const int64_t axis = attrs.integer("axis");
      WEFT_CHECK(in[0].shape()[axis] > 0, "argmax: axis {} of shape {} is empty", axis,
                 shape_str(in[0].shape()));
      return {reduced_shape(in[0].shape(), {axis}, false), DType::i64};
    },
    .forward =
        [](std::span<const Tensor> in, const Attrs& attrs, const TensorSpec& spec) {
          const AxisSplit split = split_at_axis(in[0].shape(), attrs.integer("axis"));
          Tensor out = empty(spec.shape, {.dtype = DType::i64});
          int64_t* index = out.data<int64_t>();
          dispatch_any(in[0].dtype(), [&]<typename T>() {
            const Tensor x = in[0].is_contiguous() ? in[0] : in[0].copy();
            const T* data = x.data<T>();
            for (int64_t o = 0; o < split.outer; ++o)
              for (int64_t i = 0; i < split.inner; ++i) {
                const T* row = data + o * split.axis * split.inner + i;
                int64_t best = 0;
                for (int64_t a = 1; a < split.axis; ++a)
                  if (row[a * split.inner] > row[best * split.inner]) best = a;
                index[o * split.inner + i] = best;
              }
          });
          return out;
        },
    .vjp = nullptr,
});
const bool argmax_lowered = register_lowering(argmax_op, argmax_lowering);

Tensor sum(const Tensor& x, const std::vector<int64_t>& axes, bool keepdims) {
  return apply(sum_op, {x},
               {{"axes", normalize_axes("sum", axes, x.dim())}, {"keepdims", int64_t{keepdims}}});
}

Tensor max(const Tensor& x, const std::vector<int64_t>& axes, bool keepdims) {
  return apply(max_op, {x},
               {{"axes", normalize_axes("max", axes, x.dim())}, {"keepdims", int64_t{keepdims}}});
}

Tensor argmax(const Tensor& x, int64_t axis) {
  return apply(argmax_op, {x}, {{"axis", normalize_axis("argmax", axis, x.dim())}});
}

}  // namespace weft
