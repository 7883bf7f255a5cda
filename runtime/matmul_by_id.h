// Products of rows that repeat by id, x W where rows of x with equal ids are equal (an embedding
// lookup by those ids: a recurrent layer's input projection of an Embedding's output), computed
// once per distinct id where ids repeat enough, and their gradients (ops matmul_by_id and
// matmul_by_id_grads).
#pragma once

#include <cstdint>

namespace weft {

// The operands, T float or double. `x` is rows x width, rows x_ld apart; `ids` (int32 or int64 by
// ids_64) holds `rows` non-negative ids; `kernel` is width x columns, rows kernel_ld apart. A
// negative id is a weft::Error.
template <typename T>
struct RowsById {
  const T* x;
  int64_t width, x_ld;
  const void* ids;
  bool ids_64;
  int64_t rows;
  const T* kernel;
  int64_t kernel_ld, columns;
};

// out (rows x columns, rows out_ld apart): row i is x's first row with ids[i]'s id times kernel,
// plus `bias` (columns values, or null). Where rows of equal ids are equal, that is x kernel.
template <typename T>
void matmul_by_id(const RowsById<T>& p, const T* bias, T* out, int64_t out_ld);

// That function's gradients for grad (rows x columns, rows grad_ld apart): with S the rows of grad
// summed by id into each id's first row (zero in the others), kernel_grad (width x columns,
// contiguous) = x^T S and x_grad (rows x width, contiguous) = S kernel^T. Either may be null: not
// computed.
template <typename T>
void matmul_by_id_grads(const RowsById<T>& p, const T* grad, int64_t grad_ld, T* kernel_grad,
                        T* x_grad);

}  // namespace weft
