// Keras's ways of printing numbers and shapes, shared by summary(), errors and progress lines.
#pragma once

#include <cstdint>
#include <string>

#include "weft/runtime/shape.h"

namespace weft {

// A shape without its batch axis, printed with the batch as None: (None, 30, 1). Unknown
// dimensions (-1) print as None too.
std::string keras_shape(const Shape& shape_without_batch);
// 714529 -> "714,529"
std::string thousands(int64_t n);

}  // namespace weft
