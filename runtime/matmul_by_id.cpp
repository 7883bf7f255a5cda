#include "weft/runtime/matmul_by_id.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "weft/runtime/error.h"
#include "weft/runtime/gemm.h"

namespace weft {
namespace {

// Each distinct id's first row, in order, and each row's place among them; `known` is false
// for ids far beyond the rows' count (no vocabulary's), which are left as rows.
struct FirstRows {
  std::vector<int64_t> rows;
  std::vector<int64_t> place;
  bool known = true;
};

// Per thread, kept between calls so that a compiled step allocates only on its first call (the
// halves of a step run on threads of their own).
struct Distinct {
  std::vector<uint32_t> seen;  // per id: the pass that last met it
  std::vector<int64_t> slot;   // its place among the first rows, where seen is this pass
  uint32_t pass = 0;
  FirstRows first;
  // What `first` was found for: a step's products and gradients by id (both directions of a
  // Bidirectional layer, forward and backward) read the same ids, which a comparison finds
  // faster than a second pass.
  std::vector<std::byte> ids;
  int64_t rows = -1;
};

template <typename Index>
void find_first_rows(Distinct& d, const Index* ids, int64_t rows) {
  FirstRows& out = d.first;
  out.rows.clear();
  out.place.resize(static_cast<size_t>(rows));
  if (++d.pass == 0) {  // wrapped: no entry may keep the stamp of an earlier pass
    std::ranges::fill(d.seen, 0);
    d.pass = 1;
  }
  // An id per slot, the slots grown to the largest id.
  const int64_t most_slots = 16 * rows + 65536;
  out.known = true;
  for (int64_t i = 0; i < rows; ++i) {
    const auto id = static_cast<int64_t>(ids[i]);
    WEFT_CHECK(id >= 0, "matmul_by_id: id {} at row {} is negative", id, i);
    if (id >= static_cast<int64_t>(d.seen.size())) {
      out.known = id < most_slots;
      if (!out.known) return;
      d.seen.resize(static_cast<size_t>(std::min(most_slots, std::max(2 * id, int64_t{1024}))));
      d.slot.resize(d.seen.size());
    }
    if (d.seen[id] != d.pass) {
      d.seen[id] = d.pass;
      d.slot[id] = static_cast<int64_t>(out.rows.size());
      out.rows.push_back(i);
    }
    out.place[i] = d.slot[id];
  }
}

template <typename Index>
const FirstRows& first_rows(const Index* ids, int64_t rows) {
  thread_local Distinct d;
  const auto* bytes = reinterpret_cast<const std::byte*>(ids);
  const size_t size = static_cast<size_t>(rows) * sizeof(Index);
  if (rows == d.rows && size == d.ids.size() && std::memcmp(bytes, d.ids.data(), size) == 0)
    return d.first;
  d.rows = -1;  // while d.first is not the ids' (find_first_rows may throw)
  find_first_rows(d, ids, rows);
  d.ids.assign(bytes, bytes + size);
  d.rows = rows;
  return d.first;
}

template <typename T>
const FirstRows& first_rows(const RowsById<T>& p) {
  return p.ids_64 ? first_rows(static_cast<const int64_t*>(p.ids), p.rows)
                  : first_rows(static_cast<const int32_t*>(p.ids), p.rows);
}

// Whether products over the first rows pay: a repeated row saves 2 x width flops a column in
// each product, against moving every row's values once more. On W1's step (width 64) that pays
// where at most about 60% of the rows are distinct (docs/performance.md); narrower rows need more
// repeats.
bool by_id(const FirstRows& first, int64_t rows, int64_t width) {
  const auto repeats = rows - static_cast<int64_t>(first.rows.size());
  return first.known && repeats * width >= 24 * rows;
}

// A leading dimension for gemm: at least 1, which a matrix of no columns has not.
int64_t ld(int64_t columns) { return std::max<int64_t>(columns, 1); }

// Two scratch matrices per thread and element type, grown as needed and kept: one of the first
// rows' columns (the products, or the gradient's sums) and one of their width (x's first rows,
// then their gradients once the kernel's is made).
template <typename T>
struct Scratch {
  std::vector<T> columns, width;
};

template <typename T>
T* grown(std::vector<T>& buffer, int64_t size) {
  if (static_cast<int64_t>(buffer.size()) < size) buffer.resize(static_cast<size_t>(size));
  return buffer.data();
}

template <typename T>
Scratch<T>& scratch() {
  thread_local Scratch<T> buffers;
  return buffers;
}

// x's first rows one after another, in the width scratch, and their stride.
template <typename T>
std::pair<const T*, int64_t> first_rows_of_x(const RowsById<T>& p, const FirstRows& first) {
  const auto m = static_cast<int64_t>(first.rows.size());
  T* rows = grown(scratch<T>().width, m * p.width);
  for (int64_t j = 0; j < m; ++j)
    std::memcpy(rows + j * p.width, p.x + first.rows[j] * p.x_ld, p.width * sizeof(T));
  return {rows, ld(p.width)};
}

}  // namespace

template <typename T>
void matmul_by_id(const RowsById<T>& p, const T* bias, T* out, int64_t out_ld) {
  const FirstRows& first = first_rows(p);
  if (!by_id(first, p.rows, p.width)) {
    gemm(Trans::no, Trans::no, p.rows, p.columns, p.width, T(1), p.x, p.x_ld, p.kernel, p.kernel_ld,
         T(0), out, out_ld, bias);
    return;
  }
  const auto m = static_cast<int64_t>(first.rows.size());
  const auto [x, x_ld] = first_rows_of_x(p, first);
  T* products = grown(scratch<T>().columns, m * p.columns);
  gemm(Trans::no, Trans::no, m, p.columns, p.width, T(1), x, x_ld, p.kernel, p.kernel_ld, T(0),
       products, ld(p.columns), bias);
  for (int64_t i = 0; i < p.rows; ++i)
    std::memcpy(out + i * out_ld, products + first.place[i] * p.columns, p.columns * sizeof(T));
}

template <typename T>
void matmul_by_id_grads(const RowsById<T>& p, const T* grad, int64_t grad_ld, T* kernel_grad,
                        T* x_grad) {
  const FirstRows& first = first_rows(p);
  if (!by_id(first, p.rows, p.width)) {
    if (kernel_grad != nullptr)
      gemm(Trans::yes, Trans::no, p.width, p.columns, p.rows, T(1), p.x, p.x_ld, grad, grad_ld,
           T(0), kernel_grad, ld(p.columns));
    if (x_grad != nullptr)
      gemm(Trans::no, Trans::yes, p.rows, p.width, p.columns, T(1), grad, grad_ld, p.kernel,
           p.kernel_ld, T(0), x_grad, ld(p.width));
    return;
  }
  // grad's rows summed by id, a row per first row.
  const auto m = static_cast<int64_t>(first.rows.size());
  T* sums = grown(scratch<T>().columns, m * p.columns);
  std::fill_n(sums, m * p.columns, T(0));
  for (int64_t i = 0; i < p.rows; ++i) {
    T* target = sums + first.place[i] * p.columns;
    const T* source = grad + i * grad_ld;
    for (int64_t c = 0; c < p.columns; ++c) target[c] += source[c];
  }
  if (kernel_grad != nullptr) {
    const auto [x, x_ld] = first_rows_of_x(p, first);
    gemm(Trans::yes, Trans::no, p.width, p.columns, m, T(1), x, x_ld, sums, ld(p.columns), T(0),
         kernel_grad, ld(p.columns));
  }
  if (x_grad == nullptr) return;
  T* row_grads = grown(scratch<T>().width, m * p.width);  // x's rows are read by now
  gemm(Trans::no, Trans::yes, m, p.width, p.columns, T(1), sums, ld(p.columns), p.kernel,
       p.kernel_ld, T(0), row_grads, ld(p.width));
  std::fill_n(x_grad, p.rows * p.width, T(0));
  for (int64_t j = 0; j < m; ++j)
    std::memcpy(x_grad + first.rows[j] * p.width, row_grads + j * p.width, p.width * sizeof(T));
}

template void matmul_by_id(const RowsById<float>&, const float*, float*, int64_t);
template void matmul_by_id(const RowsById<double>&, const double*, double*, int64_t);
template void matmul_by_id_grads(const RowsById<float>&, const float*, int64_t, float*, float*);
template void matmul_by_id_grads(const RowsById<double>&, const double*, int64_t, double*, double*);

}  // namespace weft
