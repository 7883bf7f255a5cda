// matmul: (..., m, k) x (..., k, n) -> (..., m, n), batch dimensions broadcast. Each matrix is
// handed to the runtime GEMM in place when its last two axes are row- or column-major (so
// transposed views cost no copy); other layouts are copied first.
#include "weft/ops/definitions.h"
#include "weft/ops/kernels.h"
#include "weft/ops/lowering.h"
#include "weft/ops/ops.h"
#include "weft/runtime/gemm.h"
#include "weft/runtime/op.h"

namespace weft {
namespace {

using Grads = std::vector<Tensor>;

struct MatrixLayout {
  bool usable;
  Trans trans;
  int64_t ld;
};

// How GEMM can read a rows x cols matrix with strides (row_stride, col_stride). GEMM wants a
// leading dimension of at least 1, which an empty matrix's stride (0) is not.
MatrixLayout layout_of(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  if ((cols == 1 || col_stride == 1) && (rows == 1 || row_stride >= cols))
    return {true, Trans::no, std::max<int64_t>(rows == 1 ? cols : row_stride, 1)};
  if ((rows == 1 || row_stride == 1) && (cols == 1 || col_stride >= rows))
    return {true, Trans::yes, std::max<int64_t>(cols == 1 ? rows : col_stride, 1)};
  return {false, Trans::no, 0};
}

struct Operand {
  Tensor view;  // broadcast to the output's batch shape
  MatrixLayout layout;
};

Operand prepare(const Tensor& x, const Shape& batch) {
  const int64_t rows = x.shape()[x.dim() - 2], cols = x.shape()[x.dim() - 1];
  Tensor source = x;
  MatrixLayout layout = layout_of(rows, cols, x.strides()[x.dim() - 2], x.strides()[x.dim() - 1]);
  if (!layout.usable) {
    source = x.copy();
    layout = layout_of(rows, cols, cols, 1);
  }
  Shape shape = batch;
  shape.push_back(rows);
  shape.push_back(cols);
  return {broadcast_view(source, shape), layout};
}

// The result's leading dimension: N, but at least 1 (GEMM's minimum) when N is 0.
int64_t result_ld(int64_t N) { return std::max<int64_t>(N, 1); }

MatrixLayout layout_of(std::span<const int64_t> shape, std::span<const int64_t> strides) {
  const size_t d = shape.size();
  return layout_of(shape[d - 2], shape[d - 1], strides[d - 2], strides[d - 1]);
}

// One call of the runtime GEMM per matrix of the batch; operands GEMM cannot read are copied
// by the compiler first (`reads`).
const Lowering matmul_lowering = KernelLowering{
    .emit =
        [](KernelBuilder& k, std::span<const Access> in, const Access& out, const Attrs&) {
          const size_t rank = out.shape.size();
          const Shape batch(out.shape.begin(), out.shape.end() - 2);
          const int64_t M = out.shape[rank - 2], N = out.shape[rank - 1];
          const int64_t K = in[0].shape.back();
          // Each operand's matrices, indexed by the output's batch index (stride 0 where the
          // operand broadcasts).
          auto matrices = [&](const Access& x) {
            const Layout own{Dims(x.shape.begin(), x.shape.end() - 2),
                             Dims(x.strides.begin(), x.strides.end() - 2)};
            return Access{x.data, batch, to_shape(broadcast_to(own, batch).strides), x.dtype};
          };
          const Access a = matrices(in[0]), b = matrices(in[1]), c = matrices(out);
          const MatrixLayout la = layout_of(in[0].shape, in[0].strides);
          const MatrixLayout lb = layout_of(in[1].shape, in[1].strides);
          const MatrixLayout lc = layout_of(out.shape, out.strides);
          const bool f32 = out.dtype == DType::f32;
          // The row added to each row of the product: only a 2-D product gets one (adds_row).
          llvm::Value* const bias =
              in.size() > 2 ? k.address(in[2], {}) : llvm::ConstantPointerNull::get(k.b.getPtrTy());
          k.for_each(batch, [&](std::span<llvm::Value* const> index) {
            llvm::Value* args[] = {k.b.getInt32(la.trans == Trans::yes),
                                   k.b.getInt32(lb.trans == Trans::yes),
                                   k.i64(M),
                                   k.i64(N),
                                   k.i64(K),
                                   k.constant(out.dtype, 1),
                                   k.address(a, index),
                                   k.i64(la.ld),
                                   k.address(b, index),
                                   k.i64(lb.ld),
                                   k.constant(out.dtype, 0),
                                   k.address(c, index),
                                   k.i64(lc.ld),
                                   bias};
            llvm::Value* status = k.call(f32 ? "weft_sgemm" : "weft_dgemm", k.b.getInt32Ty(), args);
            k.fail_on_status(status);
          });
        },
    .reads = [](size_t,
                const Layout& layout) { return layout_of(layout.shape, layout.strides).usable; },
    .writes =
        [](const Layout& layout) {
          const MatrixLayout matrix = layout_of(layout.shape, layout.strides);
          return matrix.usable && matrix.trans == Trans::no;
        },
    .adds_row = true,
};

}  // namespace

const OpDef& matmul_op = register_op({
    .name = "matmul",
    .infer = [](std::span<const Tensor> in, const Attrs&) -> TensorSpec {
      const Tensor &a = in[0], &b = in[1];
      WEFT_CHECK(a.dim() >= 2 && b.dim() >= 2,
                 "matmul: both operands need at least 2 dimensions, got {} and {}",
                 shape_str(a.shape()), shape_str(b.shape()));
      WEFT_CHECK(a.dtype() == b.dtype() && is_floating(a.dtype()),
                 "matmul: operands must share a floating-point dtype, got {} and {}",
                 dtype_name(a.dtype()), dtype_name(b.dtype()));
      WEFT_CHECK(a.shape()[a.dim() - 1] == b.shape()[b.dim() - 2],
                 "matmul: inner dimensions differ: {} @ {}", shape_str(a.shape()),
                 shape_str(b.shape()));
      Shape shape = broadcast_shapes("matmul", Shape(a.shape().begin(), a.shape().end() - 2),
                                     Shape(b.shape().begin(), b.shape().end() - 2));
      shape.push_back(a.shape()[a.dim() - 2]);
      shape.push_back(b.shape()[b.dim() - 1]);
      return {shape, a.dtype()};
    },
    .forward =
        [](std::span<const Tensor> in, const Attrs&, const TensorSpec& spec) {
          const Shape batch(spec.shape.begin(), spec.shape.end() - 2);
          const Operand a = prepare(in[0], batch), b = prepare(in[1], batch);
          const int64_t M = spec.shape[spec.shape.size() - 2], N = spec.shape.back();
          const int64_t K = in[0].shape().back();
          Tensor out = empty(spec.shape, {.dtype = spec.dtype});
          const int64_t count = shape_numel(batch);
          const Shape batch_strides = contiguous_strides(batch);
          dispatch_floating(spec.dtype, "matmul", [&]<typename T>() {
            for (int64_t n = 0; n < count; ++n) {
              int64_t a_offset = 0, b_offset = 0;
              for (size_t d = 0; d < batch.size(); ++d) {
                const int64_t i = n / batch_strides[d] % batch[d];
                a_offset += i * a.view.strides()[d];
                b_offset += i * b.view.strides()[d];
              }
              gemm(a.layout.trans, b.layout.trans, M, N, K, T(1), a.view.data<T>() + a_offset,
                   a.layout.ld, b.view.data<T>() + b_offset, b.layout.ld, T(0),
                   out.data<T>() + n * M * N, result_ld(N));
            }
          });
          return out;
        },
    .vjp = [](const VjpContext& c) -> Grads {
      const Tensor &a = c.inputs[0], &b = c.inputs[1];
      Grads grads(2);
      if (c.needs_grad[0]) grads[0] = sum_to(matmul(c.grad, transpose(b)), a.shape());
      if (c.needs_grad[1]) grads[1] = sum_to(matmul(transpose(a), c.grad), b.shape());
      return grads;
    },
});
const bool matmul_lowered = register_lowering(matmul_op, matmul_lowering);

Tensor matmul(const Tensor& a, const Tensor& b) { return apply(matmul_op, {a, b}); }

}  // namespace weft
