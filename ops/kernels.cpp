#include "weft/ops/kernels.h"

namespace weft {

Tensor broadcast_view(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const Shape target = broadcast_shapes("broadcast", x.shape(), shape);
  WEFT_CHECK(target == shape, "broadcast: shape {} does not broadcast to {}", shape_str(x.shape()),
             shape_str(shape));
  const size_t lead = shape.size() - x.shape().size();
  Shape strides(shape.size(), 0);
  for (size_t i = 0; i < x.shape().size(); ++i)
    strides[lead + i] = x.shape()[i] == shape[lead + i] ? x.strides()[i] : 0;
  return make_view(x, shape, std::move(strides), x.impl()->offset);
}

void copy_into(const Tensor& out, const Tensor& in) {
  dispatch_any(out.dtype(), [&]<typename TOut>() {
    dispatch_any(in.dtype(), [&]<typename TIn>() {
      map_into<TOut, TIn>(
          out, [](TIn v) { return static_cast<TOut>(v); }, in);
    });
  });
}

AxisSplit split_at_axis(const Shape& shape, int64_t axis) {
  AxisSplit split{1, shape[axis], 1};
  for (int64_t i = 0; i < axis; ++i) split.outer *= shape[i];
  for (size_t i = axis + 1; i < shape.size(); ++i) split.inner *= shape[i];
  return split;
}

}  // namespace weft
