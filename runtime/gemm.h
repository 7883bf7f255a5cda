// gemm: row-major general matrix multiply, C = alpha * op(A) * op(B) + beta * C.
#pragma once

#include <cstdint>

namespace weft {

enum class Trans : bool { no = false, yes = true };

// C is M x N with row stride ldc >= N. op(A) is M x K: A itself stored M x K (lda >= K), or, with
// Trans::yes, the transpose of A stored K x M (lda >= M). op(B) is K x N likewise (ldb >= N, or
// ldb >= K when transposed). beta == 0 never reads C, so C may hold garbage such as NaN; alpha == 0
// or K == 0 scales C by beta without reading A or B; M == 0 or N == 0 does nothing. Large products
// are split across default_thread_pool() unless called from inside a parallel_for body.
void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

}  // namespace weft
