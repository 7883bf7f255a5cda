#include "weft/compiler/runtime_calls.h"

#include <fmt/format.h>

#include <exception>
#include <utility>

#include "weft/runtime/gemm.h"

namespace weft {
namespace {

thread_local std::string runtime_error;

template <typename T>
int32_t gemm_call(int32_t ta, int32_t tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                  int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc,
                  const T* bias) noexcept {
  try {
    gemm(ta ? Trans::yes : Trans::no, tb ? Trans::yes : Trans::no, m, n, k, alpha, a, lda, b, ldb,
         beta, c, ldc, bias);
    return 0;
  } catch (const std::exception& error) {
    runtime_error = error.what();
    return 1;
  }
}

}  // namespace

RuntimeSymbols runtime_symbols() {
  return {{"weft_sgemm", reinterpret_cast<void*>(&weft_sgemm)},
          {"weft_dgemm", reinterpret_cast<void*>(&weft_dgemm)},
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

extern "C" void weft_kernel_fail(const char* format, int64_t value) {
  weft::runtime_error = fmt::format(fmt::runtime(format), value);
}
