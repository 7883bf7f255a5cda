// Iteration over strided operands that share one shape: the loop under every eager elementwise
// kernel, reduction and copy.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace weft {

// Calls row(offsets, count, steps) once per run of `count` elements along the innermost
// dimension, after dropping size-1 dimensions and merging dimensions that are contiguous in
// every operand (so a contiguous tensor is one row). offsets and steps are in elements.
template <std::size_t N, typename Row>
void for_each_row(const std::vector<int64_t>& shape,
                  const std::array<const std::vector<int64_t>*, N>& strides, Row&& row) {
  std::vector<int64_t> dims;
  std::array<std::vector<int64_t>, N> steps_of;
  for (std::size_t axis = 0; axis < shape.size(); ++axis) {
    if (shape[axis] == 0) return;
    if (shape[axis] == 1) continue;
    bool merges = !dims.empty();
    for (std::size_t k = 0; k < N && merges; ++k)
      merges = steps_of[k].back() == (*strides[k])[axis] * shape[axis];
    if (merges) {
      dims.back() *= shape[axis];
      for (std::size_t k = 0; k < N; ++k) steps_of[k].back() = (*strides[k])[axis];
    } else {
      dims.push_back(shape[axis]);
      for (std::size_t k = 0; k < N; ++k) steps_of[k].push_back((*strides[k])[axis]);
    }
  }
  std::array<int64_t, N> offsets{};
  std::array<int64_t, N> inner_steps{};
  if (dims.empty()) {
    row(offsets, int64_t{1}, inner_steps);
    return;
  }
  const std::size_t last = dims.size() - 1;
  for (std::size_t k = 0; k < N; ++k) inner_steps[k] = steps_of[k][last];
  std::vector<int64_t> index(last, 0);
  while (true) {
    row(offsets, dims[last], inner_steps);
    std::size_t axis = last;
    while (axis-- > 0) {
      for (std::size_t k = 0; k < N; ++k) offsets[k] += steps_of[k][axis];
      if (++index[axis] < dims[axis]) break;
      for (std::size_t k = 0; k < N; ++k) offsets[k] -= steps_of[k][axis] * dims[axis];
      index[axis] = 0;
    }
    if (axis == static_cast<std::size_t>(-1)) return;
  }
}

}  // namespace weft
