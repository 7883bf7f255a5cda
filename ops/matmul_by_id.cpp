// matmul_by_id: x W where x's rows repeat by id (an embedding's rows looked up by those ids: a
// recurrent layer's input projection of an Embedding's output), computed once per distinct id
// where ids repeat (runtime/matmul_by_id.h). Its two gradients are one op, matmul_by_id_grads,
// since both start from the gradient's rows summed by id.
#include "weft/runtime/matmul_by_id.h"

#include "weft/ops/definitions.h"
#include "weft/ops/lowering.h"
#include "weft/ops/ops.h"
#include "weft/runtime/op.h"

namespace weft {
namespace {

using Grads = std::vector<Tensor>;

void check_operands(std::string_view op, const Tensor& x, const Tensor& ids, const Tensor& kernel) {
  WEFT_CHECK(ids.dtype() == DType::i32 || ids.dtype() == DType::i64,
             "{}: ids must be int32 or int64, got {} {}", op, dtype_name(ids.dtype()),
             shape_str(ids.shape()));
  WEFT_CHECK(x.dim() == 2 && kernel.dim() == 2 && x.size(1) == kernel.size(0) && ids.dim() == 1 &&
                 ids.size(0) == x.size(0),
             "{}: expects rows (rows, width), their ids (rows,) and a kernel (width, columns), got "
             "{}, {} and {}",
             op, shape_str(x.shape()), shape_str(ids.shape()), shape_str(kernel.shape()));
  WEFT_CHECK(x.dtype() == kernel.dtype() && is_floating(x.dtype()),
             "{}: rows and kernel must share a floating-point dtype, got {} and {}", op,
             dtype_name(x.dtype()), dtype_name(kernel.dtype()));
}

// A row-major matrix's leading dimension for gemm: its row stride, but at least 1, which a
// matrix of no columns has not.
int64_t leading_dimension(int64_t row_stride) { return std::max<int64_t>(row_stride, 1); }

template <typename T>
RowsById<T> rows_by_id(const Tensor& x, const Tensor& ids, const Tensor& kernel) {
  return {.x = x.data<T>(),
          .width = x.size(1),
          .x_ld = leading_dimension(x.size(1)),
          .ids = ids.raw_data(),
          .ids_64 = ids.dtype() == DType::i64,
          .rows = x.size(0),
          .kernel = kernel.data<T>(),
          .kernel_ld = leading_dimension(kernel.size(1)),
          .columns = kernel.size(1)};
}

Tensor contiguous(const Tensor& x) { return x.is_contiguous() ? x : x.copy(); }

// The packed gradients: the kernel's first (where asked for), then x's.
struct PackedGrads {
  bool kernel, x;
  int64_t kernel_size, x_size;

  int64_t x_start() const { return kernel ? kernel_size : 0; }
  int64_t size() const { return x_start() + (x ? x_size : 0); }
};

PackedGrads packed_grads(const Attrs& attrs, int64_t kernel_size, int64_t x_size) {
  return {attrs.integer("kernel_grad") != 0, attrs.integer("x_grad") != 0, kernel_size, x_size};
}

// The two gradients out of their packed tensor, as views (undefined where not asked for).
std::pair<Tensor, Tensor> unpack(const Tensor& packed, const PackedGrads& parts, const Tensor& x,
                                 const Tensor& kernel) {
  Tensor kernel_grad, x_grad;
  if (parts.kernel) kernel_grad = reshape(slice(packed, 0, 0, parts.kernel_size), kernel.shape());
  if (parts.x) x_grad = reshape(slice(packed, 0, parts.x_start(), parts.size()), x.shape());
  return {kernel_grad, x_grad};
}

// ---- lowering: one call of a runtime shim (compiler/runtime_calls.h) -----------------------

// x and the kernel row-major at any row stride; ids and the gradient contiguous.
bool reads_rows(size_t index, const Layout& layout) {
  if (index == 1 || index == 3) return is_contiguous(layout);
  const bool columns_adjacent = layout.shape[1] == 1 || layout.strides[1] == 1;
  return columns_adjacent && (layout.shape[0] == 1 || layout.strides[0] >= layout.shape[1]);
}

// The leading dimension of a row-major matrix access.
int64_t row_stride(const Access& matrix) {
  return leading_dimension(matrix.shape[0] == 1 ? matrix.shape[1] : matrix.strides[0]);
}

// The shims' leading arguments: RowsById's fields in order.
std::vector<llvm::Value*> rows_by_id_args(KernelBuilder& k, std::span<const Access> in) {
  const Access &x = in[0], &ids = in[1], &kernel = in[2];
  return {x.data,
          k.i64(x.shape[1]),
          k.i64(row_stride(x)),
          ids.data,
          k.b.getInt32(ids.dtype == DType::i64),
          k.i64(x.shape[0]),
          kernel.data,
          k.i64(row_stride(kernel)),
          k.i64(kernel.shape[1])};
}

const Lowering matmul_by_id_lowering = KernelLowering{
    .emit =
        [](KernelBuilder& k, std::span<const Access> in, const Access& out, const Attrs&) {
          std::vector<llvm::Value*> args = rows_by_id_args(k, in);
          // The row added to each row of the product (adds_row): a fourth input.
          args.push_back(in.size() > 3 ? in[3].data
                                       : llvm::ConstantPointerNull::get(k.b.getPtrTy()));
          args.push_back(out.data);
          args.push_back(k.i64(row_stride(out)));
          const bool f32 = out.dtype == DType::f32;
          k.fail_on_status(
              k.call(f32 ? "weft_smatmul_by_id" : "weft_dmatmul_by_id", k.b.getInt32Ty(), args));
        },
    .reads = reads_rows,
    .adds_row = true,
};

const Lowering matmul_by_id_grads_lowering = KernelLowering{
    .emit =
        [](KernelBuilder& k, std::span<const Access> in, const Access& out, const Attrs& attrs) {
          const Access &x = in[0], &kernel = in[2], &grad = in[3];
          const PackedGrads parts =
              packed_grads(attrs, shape_numel(kernel.shape), shape_numel(x.shape));
          llvm::Value* const none = llvm::ConstantPointerNull::get(k.b.getPtrTy());
          std::vector<llvm::Value*> args = rows_by_id_args(k, in);
          args.push_back(grad.data);
          args.push_back(k.i64(leading_dimension(kernel.shape[1])));
          args.push_back(parts.kernel ? out.data : none);
          args.push_back(
              parts.x ? k.b.CreateGEP(k.type(out.dtype), out.data, k.i64(parts.x_start())) : none);
          const bool f32 = out.dtype == DType::f32;
          k.fail_on_status(k.call(f32 ? "weft_smatmul_by_id_grads" : "weft_dmatmul_by_id_grads",
                                  k.b.getInt32Ty(), args));
        },
    .reads = reads_rows,
};

}  // namespace

const OpDef& matmul_by_id_op = register_op({
    .name = "matmul_by_id",
    .infer = [](std::span<const Tensor> in, const Attrs&) -> TensorSpec {
      check_operands("matmul_by_id", in[0], in[1], in[2]);
      return {{in[0].size(0), in[2].size(1)}, in[0].dtype()};
    },
    .forward =
        [](std::span<const Tensor> in, const Attrs&, const TensorSpec& spec) {
          const Tensor x = contiguous(in[0]), ids = contiguous(in[1]), kernel = contiguous(in[2]);
          Tensor out = empty(spec.shape, {.dtype = spec.dtype});
          dispatch_floating(spec.dtype, "matmul_by_id", [&]<typename T>() {
            matmul_by_id(rows_by_id<T>(x, ids, kernel), static_cast<const T*>(nullptr),
                         out.data<T>(), leading_dimension(kernel.size(1)));
          });
          return out;
        },
    .vjp = [](const VjpContext& c) -> Grads {
      const Tensor &x = c.inputs[0], &kernel = c.inputs[2];
      const PackedGrads parts{c.needs_grad[2], c.needs_grad[0], kernel.numel(), x.numel()};
      const Tensor packed =
          matmul_by_id_grads(x, c.inputs[1], kernel, c.grad, parts.kernel, parts.x);
      auto [kernel_grad, x_grad] = unpack(packed, parts, x, kernel);
      return {x_grad, Tensor(), kernel_grad};
    },
});
const bool matmul_by_id_lowered = register_lowering(matmul_by_id_op, matmul_by_id_lowering);

const OpDef& matmul_by_id_grads_op = register_op({
    .name = "matmul_by_id_grads",
    .infer = [](std::span<const Tensor> in, const Attrs& attrs) -> TensorSpec {
      check_operands("matmul_by_id_grads", in[0], in[1], in[2]);
      const Shape product{in[0].size(0), in[2].size(1)};
      WEFT_CHECK(in[3].shape() == product && in[3].dtype() == in[0].dtype(),
                 "matmul_by_id_grads: the gradient must be {} {}, got {} {}",
                 dtype_name(in[0].dtype()), shape_str(product), dtype_name(in[3].dtype()),
                 shape_str(in[3].shape()));
      return {{packed_grads(attrs, in[2].numel(), in[0].numel()).size()}, in[0].dtype()};
    },
    .forward =
        [](std::span<const Tensor> in, const Attrs& attrs, const TensorSpec& spec) {
          const Tensor x = contiguous(in[0]), ids = contiguous(in[1]), kernel = contiguous(in[2]),
                       grad = contiguous(in[3]);
          const PackedGrads parts = packed_grads(attrs, kernel.numel(), x.numel());
          Tensor out = empty(spec.shape, {.dtype = spec.dtype});
          dispatch_floating(spec.dtype, "matmul_by_id_grads", [&]<typename T>() {
            T* packed = out.data<T>();
            matmul_by_id_grads(rows_by_id<T>(x, ids, kernel), grad.data<T>(),
                               leading_dimension(kernel.size(1)), parts.kernel ? packed : nullptr,
                               parts.x ? packed + parts.x_start() : nullptr);
          });
          return out;
        },
    // With S = P^T grad (grad's rows summed into each id's first row), the packed parts are
    // x^T S and S kernel^T: bilinear, so each input's gradient is a product of the same kinds.
    .vjp = [](const VjpContext& c) -> Grads {
      const Tensor &x = c.inputs[0], &ids = c.inputs[1], &kernel = c.inputs[2], &grad = c.inputs[3];
      const PackedGrads parts = packed_grads(c.attrs, kernel.numel(), x.numel());
      auto [dk, dx] = unpack(c.grad, parts, x, kernel);  // the packed parts' cotangents
      Grads grads(4);
      if (c.needs_grad[3]) {
        if (parts.kernel) grads[3] = matmul_by_id(x, ids, dk);
        if (parts.x) {
          const Tensor through_x = matmul_by_id(dx, ids, kernel);
          grads[3] = grads[3].defined() ? grads[3] + through_x : through_x;
        }
      }
      // With one part asked for, the packed tensor is that part. The kernel's part does not read
      // the kernel, nor x's part x.
      if (c.needs_grad[0])
        grads[0] = parts.kernel
                       ? reshape(matmul_by_id_grads(x, ids, dk, grad, false, true), x.shape())
                       : zeros(x.shape(), {.dtype = x.dtype()});
      if (c.needs_grad[2])
        grads[2] = parts.x ? reshape(matmul_by_id_grads(dx, ids, kernel, grad, true, false),
                                     kernel.shape())
                           : zeros(kernel.shape(), {.dtype = kernel.dtype()});
      return grads;
    },
});
const bool matmul_by_id_grads_lowered =
    register_lowering(matmul_by_id_grads_op, matmul_by_id_grads_lowering);

Tensor matmul_by_id(const Tensor& x, const Tensor& ids, const Tensor& kernel) {
  return apply(matmul_by_id_op, {x, ids, kernel});
}

Tensor matmul_by_id_grads(const Tensor& x, const Tensor& ids, const Tensor& kernel,
                          const Tensor& grad, bool kernel_grad, bool x_grad) {
  return apply(matmul_by_id_grads_op, {x, ids, kernel, grad},
               {{"kernel_grad", int64_t{kernel_grad}}, {"x_grad", int64_t{x_grad}}});
}

}  // namespace weft
