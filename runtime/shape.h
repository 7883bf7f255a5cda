// Shapes and strides: row-major, in elements.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace weft {

using Shape = std::vector<int64_t>;

// Of a Shape, or of any other run of sizes (a compiled layout's, held inline).
int64_t shape_numel(std::span<const int64_t> shape);
Shape contiguous_strides(std::span<const int64_t> shape);
// contiguous_strides into `strides` (as many as `shape` has), where a Shape would allocate.
void write_contiguous_strides(std::span<const int64_t> shape, std::span<int64_t> strides);
// The strides that read the elements of a tensor of `shape` and `strides`, in the same order, as
// a tensor of `new_shape` (same element count), without moving them; none when no strides can
// (dimensions split or merged across a gap).
std::optional<Shape> reshaped_strides(std::span<const int64_t> shape,
                                      std::span<const int64_t> strides, const Shape& new_shape);
// "(3, 8)", as Python prints a shape.
std::string shape_str(const Shape& shape);
// NumPy broadcasting of two shapes; throws weft::Error naming `op` when they do not broadcast.
Shape broadcast_shapes(std::string_view op, const Shape& a, const Shape& b);
// Maps a possibly negative axis into [0, ndim); throws weft::Error naming `op` when out of range.
int64_t normalize_axis(std::string_view op, int64_t axis, int64_t ndim);

}  // namespace weft
