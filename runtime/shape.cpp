#include "weft/runtime/shape.h"

#include <algorithm>

#include "weft/runtime/error.h"

namespace weft {

int64_t shape_numel(std::span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void write_contiguous_strides(std::span<const int64_t> shape, std::span<int64_t> strides) {
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
}

Shape contiguous_strides(std::span<const int64_t> shape) {
  Shape strides(shape.size());
  write_contiguous_strides(shape, strides);
  return strides;
}

std::optional<Shape> reshaped_strides(std::span<const int64_t> shape,
                                      std::span<const int64_t> strides, const Shape& new_shape) {
  if (shape_numel(shape) == 0 || shape.empty()) return contiguous_strides(new_shape);
  // Walks both shapes from the last dimension, one chunk of the old shape at a time: a run of
  // dimensions laid out as one (each stride the next one's times its size). The new dimensions
  // that cover a chunk exactly take strides within it; a new dimension that spans two chunks
  // cannot be strided.
  Shape new_strides(new_shape.size());
  auto view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_stride = strides.back(), chunk_numel = 1, view_numel = 1;
  for (auto d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    chunk_numel *= shape[d];
    const bool chunk_ends =
        d == 0 || (shape[d - 1] != 1 && strides[d - 1] != chunk_numel * chunk_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < chunk_numel || new_shape[view_d] == 1)) {
      new_strides[view_d] = view_numel * chunk_stride;
      view_numel *= new_shape[view_d];
      --view_d;
    }
    if (view_numel != chunk_numel) return std::nullopt;
    if (d > 0) {
      chunk_stride = strides[d - 1];
      chunk_numel = view_numel = 1;
    }
  }
  if (view_d != -1) return std::nullopt;
  return new_strides;
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
