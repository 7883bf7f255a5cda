// Shape primitives: reshape, permute, expand and slice return views where the layout allows;
// concat copies.
#include <algorithm>
#include <numeric>

#include "weft/ops/definitions.h"
#include "weft/ops/kernels.h"
#include "weft/ops/lowering.h"
#include "weft/ops/ops.h"
#include "weft/runtime/op.h"

namespace weft {
namespace {

using Grads = std::vector<Tensor>;

// ---- reshape(x, shape): one dimension may be -1 -----------------------------------------

Shape resolve_reshape(const Shape& from, const Shape& to) {
  Shape shape = to;
  int64_t known = 1;
  auto inferred = shape.end();
  for (auto it = shape.begin(); it != shape.end(); ++it) {
    if (*it == -1) {
      WEFT_CHECK(inferred == shape.end(), "reshape: more than one -1 in {}", shape_str(to));
      inferred = it;
    } else {
      WEFT_CHECK(*it >= 0, "reshape: negative dimension in {}", shape_str(to));
      known *= *it;
    }
  }
  const int64_t numel = shape_numel(from);
  if (inferred != shape.end() && known != 0 && numel % known == 0) *inferred = numel / known;
  WEFT_CHECK(shape_numel(shape) == numel && (inferred == shape.end() || known != 0),
             "reshape: cannot reshape a tensor of shape {} ({} elements) into {}", shape_str(from),
             numel, shape_str(to));
  return shape;
}

// Compiled, a view wherever the input's strides allow one (reshaped_strides). Eagerly a strided
// input is copied: the kernels after it run faster on contiguous data (W2's LSTM step 70 -> 52 ms).
const Lowering reshape_lowering =
    ViewLowering{.layout =
                     [](Layout& layout, const Attrs&, const TensorSpec& output) {
                       std::optional<Layout> view = reshaped(layout, output.shape);
                       if (view) layout = std::move(*view);
                       return view.has_value();
                     },
                 .reshapes = true};

}  // namespace

const OpDef& reshape_op = register_op({
    .name = "reshape",
    .infer = [](std::span<const Tensor> in, const Attrs& attrs) -> TensorSpec {
      return {resolve_reshape(in[0].shape(), attrs.integers("shape")), in[0].dtype()};
    },
    .forward =
        [](std::span<const Tensor> in, const Attrs&, const TensorSpec& spec) {
          const Tensor source = in[0].is_contiguous() ? in[0] : in[0].copy();
          return make_view(source, spec.shape, contiguous_strides(spec.shape),
                           source.impl()->offset);
        },
    .vjp = [](const VjpContext& c) -> Grads { return {reshape(c.grad, c.inputs[0].shape())}; },
});
const bool reshape_lowered = register_lowering(reshape_op, reshape_lowering);

namespace {

// ---- permute(x, order) ----------------------------------------------------------------------

std::vector<int64_t> inverse_permutation(const std::vector<int64_t>& order) {
  std::vector<int64_t> inverse(order.size());
  for (size_t i = 0; i < order.size(); ++i) inverse[order[i]] = static_cast<int64_t>(i);
  return inverse;
}

const Lowering permute_lowering =
    ViewLowering{.layout = [](Layout& layout, const Attrs& attrs, const TensorSpec&) {
      Layout permuted{{}, {}, layout.offset};
      for (int64_t axis : attrs.integers("order")) {
        permuted.shape.push_back(layout.shape[axis]);
        permuted.strides.push_back(layout.strides[axis]);
      }
      layout = permuted;
      return true;
    }};

}  // namespace

const OpDef& permute_op = register_op({
    .name = "permute",
    .infer = [](std::span<const Tensor> in, const Attrs& attrs) -> TensorSpec {
      const std::vector<int64_t>& order = attrs.integers("order");
      std::vector<int64_t> sorted = order;
      std::sort(sorted.begin(), sorted.end());
      std::vector<int64_t> identity(in[0].dim());
      std::iota(identity.begin(), identity.end(), 0);
      WEFT_CHECK(sorted == identity, "permute: [{}] is not a permutation of the axes of shape {}",
                 fmt::join(order, ", "), shape_str(in[0].shape()));
      Shape shape;
      for (int64_t axis : order) shape.push_back(in[0].shape()[axis]);
      return {shape, in[0].dtype()};
    },
    .forward =
        [](std::span<const Tensor> in, const Attrs& attrs, const TensorSpec& spec) {
          Shape strides;
          for (int64_t axis : attrs.integers("order")) strides.push_back(in[0].strides()[axis]);
          return make_view(in[0], spec.shape, strides, in[0].impl()->offset);
        },
    .vjp = [](const VjpContext& c) -> Grads {
      return {permute(c.grad, inverse_permutation(c.attrs.integers("order")))};
    },
});
const bool permute_lowered = register_lowering(permute_op, permute_lowering);

namespace {

// ---- expand(x, shape): NumPy broadcasting as a view ---------------------------------------

const Lowering expand_lowering =
    ViewLowering{.layout = [](Layout& layout, const Attrs&, const TensorSpec& output) {
      layout = broadcast_to(layout, output.shape);
      return true;
    }};

}  // namespace

const OpDef& expand_op = register_op({
    .name = "expand",
    .infer = [](std::span<const Tensor> in, const Attrs& attrs) -> TensorSpec {
      const Shape& shape = attrs.integers("shape");
      WEFT_CHECK(broadcast_shapes("expand", in[0].shape(), shape) == shape,
                 "expand: shape {} does not broadcast to {}", shape_str(in[0].shape()),
                 shape_str(shape));
      return {shape, in[0].dtype()};
    },
    .forward = [](std::span<const Tensor> in, const Attrs&,
                  const TensorSpec& spec) { return broadcast_view(in[0], spec.shape); },
    .vjp = [](const VjpContext& c) -> Grads { return {sum_to(c.grad, c.inputs[0].shape())}; },
});
const bool expand_lowered = register_lowering(expand_op, expand_lowering);

namespace {

// ---- slice(x, axis, start, stop) ----------------------------------------------------------

const Lowering slice_lowering =
    ViewLowering{.layout = [](Layout& layout, const Attrs& attrs, const TensorSpec& output) {
      layout.offset += attrs.integer("start") * layout.strides[attrs.integer("axis")];
      layout.shape = to_dims(output.shape);
      return true;
    }};

}  // namespace

const OpDef& slice_op = register_op({
    .name = "slice",
    .infer = [](std::span<const Tensor> in, const Attrs& attrs) -> TensorSpec {
      const int64_t axis = attrs.integer("axis");
      const int64_t start = attrs.integer("start"), stop = attrs.integer("stop");
      const int64_t size = in[0].shape()[axis];
      WEFT_CHECK(0 <= start && start <= stop && stop <= size,
                 "slice: [{}, {}) is out of range for axis {} of shape {}", start, stop, axis,
                 shape_str(in[0].shape()));
      Shape shape = in[0].shape();
      shape[axis] = stop - start;
      return {shape, in[0].dtype()};
    },
    .forward =
        [](std::span<const Tensor> in, const Attrs& attrs, const TensorSpec& spec) {
          const int64_t axis = attrs.integer("axis");
          return make_view(in[0], spec.shape, in[0].strides(),
                           in[0].impl()->offset + attrs.integer("start") * in[0].strides()[axis]);
        },
    .vjp = [](const VjpContext& c) -> Grads {
      return {place_parts(c.inputs[0].shape(), c.attrs.integer("axis"),
                          {{c.attrs.integer("start"), c.grad}})};
    },
    .output_region =
        [](const Attrs& attrs) {
          return OutputRegion{attrs.integer("axis"), attrs.integer("start"), attrs.integer("stop")};
        },
});
const bool slice_lowered = register_lowering(slice_op, slice_lowering);

namespace {

// ---- concat(xs, axis) ---------------------------------------------------------------------

// Input i fills the output from the sum of the earlier inputs' extents along the axis.
const Lowering concat_lowering =
    RegionsLowering{.region = [](size_t index, const Layout& output, const Attrs& attrs,
                                 std::span<const Shape> input_shapes) {
      const auto axis = static_cast<size_t>(attrs.integer("axis"));
      Layout region = output;
      for (size_t i = 0; i < index; ++i)
        region.offset += input_shapes[i][axis] * output.strides[axis];
      region.shape[axis] = input_shapes[index][axis];
      return region;
    }};

}  // namespace

const OpDef& concat_op = register_op({
    .name = "concat",
    .infer = [](std::span<const Tensor> in, const Attrs& attrs) -> TensorSpec {
      WEFT_CHECK(!in.empty(), "concat: no tensors to concatenate");
      const int64_t axis = attrs.integer("axis");
      Shape shape = in[0].shape();
      for (size_t i = 1; i < in.size(); ++i) {
        const Shape& other = in[i].shape();
        bool fits = other.size() == shape.size() && in[i].dtype() == in[0].dtype();
        for (size_t d = 0; fits && d < shape.size(); ++d)
          fits = static_cast<int64_t>(d) == axis || other[d] == shape[d];
        WEFT_CHECK(fits, "concat: tensor {} ({} {}) does not fit tensor 0 ({} {}) along axis {}", i,
                   dtype_name(in[i].dtype()), shape_str(other), dtype_name(in[0].dtype()),
                   shape_str(in[0].shape()), axis);
        shape[axis] += other[axis];
      }
      return {shape, in[0].dtype()};
    },
    .forward =
        [](std::span<const Tensor> in, const Attrs& attrs, const TensorSpec& spec) {
          const int64_t axis = attrs.integer("axis");
          Tensor out = empty(spec.shape, {.dtype = spec.dtype});
          int64_t start = 0;
          for (const Tensor& x : in) {
            Shape part = spec.shape;
            part[axis] = x.shape()[axis];
            copy_into(make_view(out, part, out.strides(), start * out.strides()[axis]), x);
            start += x.shape()[axis];
          }
          return out;
        },
    .vjp = [](const VjpContext& c) -> Grads {
      const int64_t axis = c.attrs.integer("axis");
      Grads grads(c.inputs.size());
      int64_t start = 0;
      for (size_t i = 0; i < c.inputs.size(); ++i) {
        const int64_t stop = start + c.inputs[i].shape()[axis];
        if (c.needs_grad[i]) grads[i] = slice(c.grad, axis, start, stop);
        start = stop;
      }
      return grads;
    },
});
const bool concat_lowered = register_lowering(concat_op, concat_lowering);

Tensor reshape(const Tensor& x, const Shape& shape) {
  return apply(reshape_op, {x}, {{"shape", shape}});
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& order) {
  std::vector<int64_t> axes;
  for (int64_t axis : order) axes.push_back(normalize_axis("permute", axis, x.dim()));
  return apply(permute_op, {x}, {{"order", axes}});
}

Tensor expand(const Tensor& x, const Shape& shape) {
  return apply(expand_op, {x}, {{"shape", shape}});
}

Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t stop) {
  return apply(
      slice_op, {x},
      {{"axis", normalize_axis("slice", axis, x.dim())}, {"start", start}, {"stop", stop}});
}

Tensor concat(const std::vector<Tensor>& xs, int64_t axis) {
  WEFT_CHECK(!xs.empty(), "concat: no tensors to concatenate");
  return apply(concat_op, xs, {{"axis", normalize_axis("concat", axis, xs[0].dim())}});
}

Tensor place_parts(const Shape& shape, int64_t axis,
                   const std::vector<std::pair<int64_t, Tensor>>& parts) {
  WEFT_CHECK(!parts.empty(), "place_parts: no parts");
  std::vector<Tensor> pieces;
  int64_t at = 0;
  auto zeros_until = [&](int64_t stop) {
    WEFT_CHECK(at <= stop, "place_parts: parts overlap at {} along axis {} of shape {}", stop, axis,
               shape_str(shape));
    if (at == stop) return;
    Shape gap = shape;
    gap[axis] = stop - at;
    pieces.push_back(expand(scalar(0, parts[0].second.dtype()), gap));
    at = stop;
  };
  for (const auto& [start, part] : parts) {
    zeros_until(start);
    pieces.push_back(part);
    at = start + part.shape()[axis];
  }
  zeros_until(shape[axis]);
  return pieces.size() == 1 ? pieces[0] : concat(pieces, axis);
}

}  // namespace weft
