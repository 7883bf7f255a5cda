#include "weft/autodiff/shape.h"

#include <algorithm>

#include "weft/runtime/error.h"

namespace weft {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

std::string shape_str(const Shape& shape) {
  if (shape.size() == 1) return fmt::format("({},)", shape[0]);
  return fmt::format("({})", fmt::join(shape, ", "));
}

Shape broadcast_shapes(std::string_view op, const Shape& a, const Shape& b) {
  const size_t ndim = std::max(a.size(), b.size());
  Shape out(ndim);
  for (size_t i = 0; i < ndim; ++i) {
    const int64_t da = i < ndim - a.size() ? 1 : a[i - (ndim - a.size())];
    const int64_t db = i < ndim - b.size() ? 1 : b[i - (ndim - b.size())];
    WEFT_CHECK(da == db || da == 1 || db == 1, "{}: shapes {} and {} do not broadcast", op,
               shape_str(a), shape_str(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

int64_t normalize_axis(std::string_view op, int64_t axis, int64_t ndim) {
  WEFT_CHECK(axis >= -ndim && axis < ndim,
             "{}: axis {} is out of range for a tensor of {} dimensions", op, axis, ndim);
  return axis < 0 ? axis + ndim : axis;
}

}  // namespace weft
