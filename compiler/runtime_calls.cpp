#include "weft/compiler/runtime_calls.h"

#include <fmt/format.h>

#include <exception>
#include <utility>

#include "weft/runtime/gemm.h"
#include "weft/runtime/matmul_by_id.h"

namespace weft {
namespace {

thread_local std::string runtime_error;

// Runs `body`; a weft::Error (or any exception) becomes a nonzero status and its message.
template <typename Body>
int32_t status_of(Body&& body) noexcept {
  try {
    body();
    return 0;
  } catch (const std::exception& error) {
    runtime_error = error.what();
    return 1;
  }
}

template <typename T>
int32_t gemm_call(int32_t ta, int32_t tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                  int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc,
                  const T* bias) noexcept {
  return status_of([&] {
    gemm(ta ? Trans::yes : Trans::no, tb ? Trans::yes : Trans::no, m, n, k, alpha, a, lda, b, ldb,
         beta, c, ldc, bias);
  });
}

template <typename T>
int32_t matmul_by_id_call(const T* x, int64_t width, int64_t x_ld, const void* ids, int32_t ids_64,
                          int64_t rows, const T* kernel, int64_t kernel_ld, int64_t columns,
                          const T* bias, T* out, int64_t out_ld) noexcept {
  return status_of([&] {
    matmul_by_id(RowsById<T>{x, width, x_ld, ids, ids_64 != 0, rows, kernel, kernel_ld, columns},
                 bias, out, out_ld);
  });
}

template <typename T>
int32_t matmul_by_id_grads_call(const T* x, int64_t width, int64_t x_ld, const void* ids,
                                int32_t ids_64, int64_t rows, const T* kernel, int64_t kernel_ld,
                                int64_t columns, const T* grad, int64_t grad_ld, T* kernel_grad,
                                T* x_grad) noexcept {
  return status_of([&] {
    matmul_by_id_grads(
        RowsById<T>{x, width, x_ld, ids, ids_64 != 0, rows, kernel, kernel_ld, columns}, grad,
        grad_ld, kernel_grad, x_grad);
  });
}

}  // namespace

RuntimeSymbols runtime_symbols() {
  return {{"weft_sgemm", reinterpret_cast<void*>(&weft_sgemm)},
          {"weft_dgemm", reinterpret_cast<void*>(&weft_dgemm)},
          {"weft_smatmul_by_id", reinterpret_cast<void*>(&weft_smatmul_by_id)},
          {"weft_dmatmul_by_id", reinterpret_cast<void*>(&weft_dmatmul_by_id)},
          {"weft_smatmul_by_id_grads", reinterpret_cast<void*>(&weft_smatmul_by_id_grads)},
          {"weft_dmatmul_by_id_grads", reinterpret_cast<void*>(&weft_dmatmul_by_id_grads)},
          {"weft_kernel_fail", reinterpret_cast<void*>(&weft_kernel_fail)}};
}

std::string jit_take_runtime_error() { return std::exchange(runtime_error, std::string()); }

}  // namespace weft

extern "C" int32_t weft_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k,
                              float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                              float beta, float* c, int64_t ldc, const float* bias) {
  return weft::gemm_call(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias);
}

extern "C" int32_t weft_dgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k,
                              double alpha, const double* a, int64_t lda, const double* b,
                              int64_t ldb, double beta, double* c, int64_t ldc,
                              const double* bias) {
  return weft::gemm_call(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias);
}

extern "C" int32_t weft_smatmul_by_id(const float* x, int64_t width, int64_t x_ld, const void* ids,
                                      int32_t ids_64, int64_t rows, const float* kernel,
                                      int64_t kernel_ld, int64_t columns, const float* bias,
                                      float* out, int64_t out_ld) {
  return weft::matmul_by_id_call(x, width, x_ld, ids, ids_64, rows, kernel, kernel_ld, columns,
                                 bias, out, out_ld);
}

extern "C" int32_t weft_dmatmul_by_id(const double* x, int64_t width, int64_t x_ld, const void* ids,
                                      int32_t ids_64, int64_t rows, const double* kernel,
                                      int64_t kernel_ld, int64_t columns, const double* bias,
                                      double* out, int64_t out_ld) {
  return weft::matmul_by_id_call(x, width, x_ld, ids, ids_64, rows, kernel, kernel_ld, columns,
                                 bias, out, out_ld);
}

extern "C" int32_t weft_smatmul_by_id_grads(const float* x, int64_t width, int64_t x_ld,
                                            const void* ids, int32_t ids_64, int64_t rows,
                                            const float* kernel, int64_t kernel_ld, int64_t columns,
                                            const float* grad, int64_t grad_ld, float* kernel_grad,
                                            float* x_grad) {
  return weft::matmul_by_id_grads_call(x, width, x_ld, ids, ids_64, rows, kernel, kernel_ld,
                                       columns, grad, grad_ld, kernel_grad, x_grad);
}

extern "C" int32_t weft_dmatmul_by_id_grads(const double* x, int64_t width, int64_t x_ld,
                                            const void* ids, int32_t ids_64, int64_t rows,
                                            const double* kernel, int64_t kernel_ld,
                                            int64_t columns, const double* grad, int64_t grad_ld,
                                            double* kernel_grad, double* x_grad) {
  return weft::matmul_by_id_grads_call(x, width, x_ld, ids, ids_64, rows, kernel, kernel_ld,
                                       columns, grad, grad_ld, kernel_grad, x_grad);
}

extern "C" void weft_kernel_fail(const char* format, int64_t value) {
  weft::runtime_error = fmt::format(fmt::runtime(format), value);
}
