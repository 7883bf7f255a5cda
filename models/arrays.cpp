#include "weft/models/arrays.h"

#include "weft/runtime/error.h"

namespace weft {
namespace {

template <typename T>
void check_matrix(const Matrix<T>& m) {
  WEFT_CHECK(m.rows >= 0 && m.cols >= 0 && static_cast<int64_t>(m.values.size()) == m.rows * m.cols,
             "to_tensor(): a {}x{} matrix holds {} values", m.rows, m.cols, m.values.size());
}

template <typename T>
Tensor converted(const std::vector<T>& values, const Shape& shape, DType dtype) {
  const Tensor exact = from_vector(values, shape);
  return exact.dtype() == dtype ? exact : to_dtype(exact, dtype);
}

}  // namespace

Tensor to_tensor(const IntMatrix& m) {
  check_matrix(m);
  return from_vector(m.values, {m.rows, m.cols});
}

Tensor to_tensor(const DoubleMatrix& m, DType dtype) {
  check_matrix(m);
  return converted(m.values, {m.rows, m.cols}, dtype);
}

Tensor to_tensor(const std::vector<int64_t>& values, DType dtype) {
  return converted(values, {static_cast<int64_t>(values.size())}, dtype);
}

Tensor to_tensor(const std::vector<double>& values, DType dtype) {
  return converted(values, {static_cast<int64_t>(values.size())}, dtype);
}

}  // namespace weft
