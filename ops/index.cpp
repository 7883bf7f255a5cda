// Indexing primitives: gather along an axis (embedding lookup) and its transpose, scatter_add.
#include <algorithm>
#include <cstring>

#include "weft/ops/definitions.h"
#include "weft/ops/kernels.h"
#include "weft/ops/lowering.h"
#include "weft/ops/ops.h"
#include "weft/runtime/op.h"

namespace weft {
namespace {

using Grads = std::vector<Tensor>;

// Indices as int64, checked against the extent of the axis they index.
std::vector<int64_t> checked_indices(std::string_view op, const Tensor& indices, int64_t extent,
                                     int64_t axis, const Shape& shape) {
  std::vector<int64_t> values = indices.to_vector<int64_t>();
  for (int64_t v : values)
    WEFT_CHECK(0 <= v && v < extent,
               "{}: index {} is out of range for axis {} of size {} (shape {})", op, v, axis,
               extent, shape_str(shape));
  return values;
}

void check_index_dtype(std::string_view op, const Tensor& indices) {
  WEFT_CHECK(indices.dtype() == DType::i32 || indices.dtype() == DType::i64,
             "{}: indices must be int32 or int64, got {} {}", op, dtype_name(indices.dtype()),
             shape_str(indices.shape()));
}

// Reads the index at positions [axis, axis + rank) of `at` and checks it like checked_indices;
// returns `at` with those positions replaced by the one index.
std::vector<llvm::Value*> indexed(KernelBuilder& k, std::string_view op, const Access& indices,
                                  std::span<llvm::Value* const> at, size_t axis, int64_t extent,
                                  const Shape& shape) {
  const auto first = at.begin() + static_cast<std::ptrdiff_t>(axis);
  const auto last = first + static_cast<std::ptrdiff_t>(indices.shape.size());
  llvm::Value* index =
      k.convert(k.load(indices, std::vector<llvm::Value*>(first, last)), indices.dtype, DType::i64);
  k.fail_if(k.b.CreateICmpUGE(index, k.i64(extent)),
            fmt::format("{}: index {{}} is out of range for axis {} of size {} (shape {})", op,
                        axis, extent, shape_str(shape)),
            index);
  std::vector<llvm::Value*> result(at.begin(), first);
  result.push_back(index);
  result.insert(result.end(), last, at.end());
  return result;
}

const Lowering gather_lowering =
    KernelLowering{.emit = [](KernelBuilder& k, std::span<const Access> in, const Access& out,
                              const Attrs& attrs) {
      const auto axis = static_cast<size_t>(attrs.integer("axis"));
      k.for_each(out.shape, [&](std::span<llvm::Value* const> at) {
        const std::vector<llvm::Value*> source =
            indexed(k, "gather", in[1], at, axis, in[0].shape[axis], in[0].shape);
        k.store(out, at, k.load(in[0], source));
      });
    }};

}  // namespace

const OpDef& gather_op = register_op({
    .name = "gather",
    .infer = [](std::span<const Tensor> in, const Attrs& attrs) -> TensorSpec {
      check_index_dtype("gather", in[1]);
      const int64_t axis = attrs.integer("axis");
      const Shape& x = in[0].shape();
      Shape shape(x.begin(), x.begin() + axis);
      shape.insert(shape.end(), in[1].shape().begin(), in[1].shape().end());
      shape.insert(shape.end(), x.begin() + axis + 1, x.end());
      return {shape, in[0].dtype()};
    },
    .forward =
        [](std::span<const Tensor> in, const Attrs& attrs, const TensorSpec& spec) {
          const int64_t axis = attrs.integer("axis");
          const Tensor x = in[0].is_contiguous() ? in[0] : in[0].copy();
          const AxisSplit split = split_at_axis(x.shape(), axis);
          const std::vector<int64_t> index =
              checked_indices("gather", in[1], split.axis, axis, x.shape());
          Tensor out = empty(spec.shape, {.dtype = spec.dtype});
          const size_t row_bytes = split.inner * dtype_size(x.dtype());
          const char* source = static_cast<const char*>(x.raw_data());
          char* target = static_cast<char*>(out.raw_data());
          for (int64_t o = 0; o < split.outer; ++o)
            for (size_t j = 0; j < index.size(); ++j, target += row_bytes)
              std::memcpy(target, source + (o * split.axis + index[j]) * row_bytes, row_bytes);
          return out;
        },
    .vjp = [](const VjpContext& c) -> Grads {
      const int64_t axis = c.attrs.integer("axis");
      return {scatter_add(c.grad, axis, c.inputs[1], c.inputs[0].shape()[axis]), Tensor()};
    },
});
const bool gather_lowered = register_lowering(gather_op, gather_lowering);

namespace {

const Lowering scatter_add_lowering =
    KernelLowering{.emit = [](KernelBuilder& k, std::span<const Access> in, const Access& out,
                              const Attrs& attrs) {
      const auto axis = static_cast<size_t>(attrs.integer("axis"));
      k.for_each(out.shape, [&](std::span<llvm::Value* const> at) {
        k.store(out, at, k.constant(out.dtype, 0));
      });
      k.for_each(in[0].shape, [&](std::span<llvm::Value* const> at) {
        const std::vector<llvm::Value*> target =
            indexed(k, "scatter_add", in[1], at, axis, out.shape[axis], out.shape);
        llvm::Value* address = k.address(out, target);
        llvm::Value* sum =
            k.b.CreateFAdd(k.b.CreateLoad(k.type(out.dtype), address), k.load(in[0], at));
        k.b.CreateStore(sum, address);
      });
    }};

}  // namespace

const OpDef& scatter_add_op = register_op({
    .name = "scatter_add",
    .infer = [](std::span<const Tensor> in, const Attrs& attrs) -> TensorSpec {
      check_index_dtype("scatter_add", in[1]);
      WEFT_CHECK(is_floating(in[0].dtype()), "scatter_add: expects floating-point values, got {}",
                 dtype_name(in[0].dtype()));
      const int64_t axis = attrs.integer("axis");
      const Shape& src = in[0].shape();
      const Shape& idx = in[1].shape();
      const bool fits =
          src.size() >= axis + idx.size() && std::equal(idx.begin(), idx.end(), src.begin() + axis);
      WEFT_CHECK(fits,
                 "scatter_add: indices of shape {} do not match values of shape {} at axis {}",
                 shape_str(idx), shape_str(src), axis);
      Shape shape(src.begin(), src.begin() + axis);
      shape.push_back(attrs.integer("size"));
      shape.insert(shape.end(), src.begin() + axis + idx.size(), src.end());
      return {shape, in[0].dtype()};
    },
    .forward =
        [](std::span<const Tensor> in, const Attrs& attrs, const TensorSpec& spec) {
          const int64_t axis = attrs.integer("axis");
          const int64_t size = attrs.integer("size");
          const Tensor src = in[0].is_contiguous() ? in[0] : in[0].copy();
          Tensor out = zeros(spec.shape, {.dtype = spec.dtype});
          const AxisSplit split = split_at_axis(spec.shape, axis);
          const std::vector<int64_t> index =
              checked_indices("scatter_add", in[1], size, axis, spec.shape);
          dispatch_floating(spec.dtype, "scatter_add", [&]<typename T>() {
            const T* source = src.data<T>();
            T* target = out.data<T>();
            for (int64_t o = 0; o < split.outer; ++o)
              for (size_t j = 0; j < index.size(); ++j, source += split.inner) {
                T* row = target + (o * size + index[j]) * split.inner;
                for (int64_t i = 0; i < split.inner; ++i) row[i] += source[i];
              }
          });
          return out;
        },
    .vjp = [](const VjpContext& c) -> Grads {
      return {gather(c.grad, c.attrs.integer("axis"), c.inputs[1]), Tensor()};
    },
});
const bool scatter_add_lowered = register_lowering(scatter_add_op, scatter_add_lowering);

Tensor gather(const Tensor& x, int64_t axis, const Tensor& indices) {
  return apply(gather_op, {x, indices}, {{"axis", normalize_axis("gather", axis, x.dim())}});
}

Tensor scatter_add(const Tensor& src, int64_t axis, const Tensor& indices, int64_t size) {
  WEFT_CHECK(size >= 0, "scatter_add: negative size {}", size);
  // `axis` is the result's, which has one dimension where the indices have theirs: with 0-d
  // indices (the gradient of gather by one index) it may be src's rank. Indices of a higher rank
  // than src's are left to the shape rule's message.
  const int64_t rank = std::max<int64_t>(src.dim() - indices.dim() + 1, 1);
  return apply(scatter_add_op, {src, indices},
               {{"axis", normalize_axis("scatter_add", axis, rank)}, {"size", size}});
}

}  // namespace weft
