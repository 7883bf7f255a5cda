// gemm: row-major general matrix multiply, C = alpha * op(A) * op(B) + beta * C (+ bias).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace weft {

enum class Trans : bool { no = false, yes = true };

// C is M x N with row stride ldc >= N. op(A) is M x K: A itself stored M x K (lda >= K), or, with
// Trans::yes, the transpose of A stored K x M (lda >= M). op(B) is K x N likewise (ldb >= N, or
// ldb >= K when transposed). beta == 0 never reads C, so C may hold garbage such as NaN; alpha == 0
// or K == 0 scales C by beta without reading A or B; M == 0 or N == 0 does nothing. Large products
// are split across default_thread_pool(). Inside a parallel_for body, products of 10^8 flops and
// more run in parts on the calling thread that the pool's idle threads may take
// (ThreadPool::share); which threads run them never changes the results. A bias
// (N values, or null) is added to each row of C last, as a separate addition after the product
// would add it (the same roundings): where the tiles of C are stored, not in a pass of its own.
void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
          const float* bias = nullptr);
void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc,
          const double* bias = nullptr);

// 64-byte aligned bytes (a cache line, and one AVX-512 register), freed with their owner: gemm's
// scratch buffers and PackedB's copy.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t bytes);
  std::byte* data() const { return data_.get(); }

 private:
  struct Free {
    void operator()(std::byte* p) const;
  };
  std::unique_ptr<std::byte, Free> data_;
};

// A copy of a K x N matrix B (row-major, rows ldb apart) in the layout that a product of one row
// of A by B reads fastest: blocks of 16 vectors' worth of columns, each block's K rows one after
// another. Read in place, each row's part for a block is followed by a jump to the next row, and
// L2 delivers such a walk about 30% slower than a contiguous one (1 x 128 x 512: 2.26 us in
// place, 1.59 us packed), whatever the kernel. A streaming step reads the same weights every call,
// so a compiled step keeps them packed while they stay unchanged (compile.h).
class PackedB {
 public:
  // T: float or double.
  template <typename T>
  PackedB(const T* b, int64_t k, int64_t n, int64_t ldb);

  // Whether the copy of a B of N columns of `element_bytes` each, its rows N apart, is laid out
  // otherwise than B: only one wider than a block.
  static bool reorders(int64_t n, size_t element_bytes);

  // Whether this is a copy of the K x N matrix at `b`, rows `ldb` apart.
  template <typename T>
  bool copies(const T* b, int64_t k, int64_t n, int64_t ldb) const {
    return b == source_ && k == k_ && n == n_ && ldb == ldb_ && sizeof(T) == element_bytes_;
  }
  int64_t bytes() const { return bytes_; }
  // Whether the copy holds B's floats as bfloat16 values, in pairs (gemm.cpp): where this build
  // reads them faster than floats (stores_bfloat16(), AVX-512) and every value of B is exactly
  // one (its low 16 bits zero). Checked first: it reads fastest.
  bool holds_bfloat16() const { return values_ == Values::bfloat16; }
  static bool stores_bfloat16();
  // Whether the copy holds B's floats as halves (IEEE binary16): where this build converts
  // halves quickly (stores_halves()) and every value of B is exactly a half.
  bool holds_halves() const { return values_ == Values::halves; }
  static bool stores_halves();
  // The packed block of columns [j0, j0 + block_columns()) (fewer in the last block), its rows
  // that block's width apart. T: B's element type, std::uint16_t where the copy holds halves,
  // std::uint32_t (a pair) where it holds bfloat16 values.
  template <typename T>
  const T* block(int64_t j0) const {
    const int64_t value_bytes =
        values_ == Values::elements ? static_cast<int64_t>(element_bytes_) : 2;
    return reinterpret_cast<const T*>(data_.data() + j0 * k_ * value_bytes);
  }
  int64_t block_columns() const { return block_columns_; }

 private:
  const void* source_;
  int64_t k_, n_, ldb_;
  size_t element_bytes_;
  int64_t block_columns_;
  enum class Values { elements, halves, bfloat16 } values_ = Values::elements;
  int64_t bytes_ = 0;
  AlignedBuffer data_;
};

// While a scope lives, gemm on its thread computes each product of a single row of op(A) by a
// matrix B (not transposed) of which `packed` holds a copy from that copy, not from B. The caller
// answers for the copies being current: B unchanged since it was packed.
class PackedBScope {
 public:
  explicit PackedBScope(std::span<const PackedB* const> packed);
  ~PackedBScope();
  PackedBScope(const PackedBScope&) = delete;
  PackedBScope& operator=(const PackedBScope&) = delete;

 private:
  std::span<const PackedB* const> previous_;
};

}  // namespace weft
