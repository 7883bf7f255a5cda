// Shapes and strides: row-major, in elements.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace weft {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);
// The strides that read the elements of a tensor of `shape` and `strides`, in the same order, as
// a tensor of `new_shape` (same element count), without moving them; none when no strides can
// (dimensions split or merged across a gap).
std::optional<Shape> reshaped_strides(const Shape& shape, const Shape& strides,
                                      const Shape& new_shape);
// "(3, 8)", as Python prints a shape.
std::string shape_str(const Shape& shape);
// NumPy broadcasting of two shapes; throws weft::Error naming `op` when they do not broadcast.
Shape broadcast_shapes(std::string_view op, const Shape& a, const Shape& b);
// Maps a possibly negative axis into [0, ndim); throws weft::Error naming `op` when out of range.
int64_t normalize_axis(std::string_view op, int64_t axis, int64_t ndim);

}  // namespace weft
