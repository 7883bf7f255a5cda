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
// Records a failure detected by compiled code: `format` (a fmt string with one {}) and `value`.
void weft_kernel_fail(const char* format, int64_t value);
}
