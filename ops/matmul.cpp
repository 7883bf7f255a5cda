// matmul: (..., m, k) x (..., k, n) -> (..., m, n), batch dimensions broadcast. Each matrix is
// handed to the runtime GEMM in place when its last two axes are row- or column-major (so
// transposed views cost no copy); other layouts are copied first.
#include "weft/autodiff/op.h"
#include "weft/ops/kernels.h"
#include "weft/ops/ops.h"
#include "weft/runtime/gemm.h"

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
                   out.data<T>() + n * M * N, N);
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

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) { return apply(matmul_op, {a, b}); }

}  // namespace weft
