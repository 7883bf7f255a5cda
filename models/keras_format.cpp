#include "weft/models/keras_format.h"

#include <fmt/format.h>

namespace weft {

std::string keras_shape(const Shape& shape_without_batch) {
  std::string text = "(None";
  for (int64_t d : shape_without_batch) text += d < 0 ? ", None" : fmt::format(", {}", d);
  return text + ")";
}

std::string thousands(int64_t n) {
  const std::string digits = std::to_string(n < 0 ? -n : n);
  std::string text = n < 0 ? "-" : "";
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) text += ',';
    text += digits[i];
  }
  return text;
}

}  // namespace weft
