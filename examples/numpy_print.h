// How numpy prints arrays, for examples whose output follows the chapter's Python.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace weft::examples {

// How numpy prints a 1-D integer array: every value right-aligned to the widest, within [ ].
inline std::string numpy_row(std::span<const int64_t> row) {
  size_t width = 0;
  for (int64_t v : row) width = std::max(width, std::to_string(v).size());
  std::string out = "[";
  for (size_t i = 0; i < row.size(); ++i)
    out += fmt::format("{}{:>{}}", i == 0 ? "" : " ", row[i], width);
  return out + "]";
}

}  // namespace weft::examples
