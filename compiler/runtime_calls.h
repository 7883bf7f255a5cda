// The C functions compiled steps call into (the GEMM, failure reports), and their symbol map for
// the JIT (Jit::create). They never throw into compiled code: they return 0 on success, and
// nonzero after recording the weft::Error for jit_take_runtime_error(). Transposes are 0 or 1.
#pragma once

#include <cstdint>
#include <string>

#include "weft/compiler/jit.h"

namespace weft {

// Every function below, by its C name.
RuntimeSymbols runtime_symbols();

// The message of the last runtime call on this thread that failed, cleared by the call; empty
// when none failed. Compiled code checks a call's status and its caller throws this.
std::string jit_take_runtime_error();

}  // namespace weft

extern "C" {
// weft::gemm; `bias` may be null.
int32_t weft_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                   int64_t ldc, const float* bias);
int32_t weft_dgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                   const double* a, int64_t lda, const double* b, int64_t ldb, double beta,
                   double* c, int64_t ldc, const double* bias);
// weft::matmul_by_id and matmul_by_id_grads (runtime/matmul_by_id.h), RowsById's fields first;
// `bias`, `kernel_grad` and `x_grad` may be null.
int32_t weft_smatmul_by_id(const float* x, int64_t width, int64_t x_ld, const void* ids,
                           int32_t ids_64, int64_t rows, const float* kernel, int64_t kernel_ld,
                           int64_t columns, const float* bias, float* out, int64_t out_ld);
int32_t weft_dmatmul_by_id(const double* x, int64_t width, int64_t x_ld, const void* ids,
                           int32_t ids_64, int64_t rows, const double* kernel, int64_t kernel_ld,
                           int64_t columns, const double* bias, double* out, int64_t out_ld);
int32_t weft_smatmul_by_id_grads(const float* x, int64_t width, int64_t x_ld, const void* ids,
                                 int32_t ids_64, int64_t rows, const float* kernel,
                                 int64_t kernel_ld, int64_t columns, const float* grad,
                                 int64_t grad_ld, float* kernel_grad, float* x_grad);
int32_t weft_dmatmul_by_id_grads(const double* x, int64_t width, int64_t x_ld, const void* ids,
                                 int32_t ids_64, int64_t rows, const double* kernel,
                                 int64_t kernel_ld, int64_t columns, const double* grad,
                                 int64_t grad_ld, double* kernel_grad, double* x_grad);
// Records a failure detected by compiled code: `format` (a fmt string with one {}) and `value`.
void weft_kernel_fail(const char* format, int64_t value);
}
