// Blocked GEMM in the GotoBLAS/BLIS style, for row-major operands.
//
// C is computed in tiles of mr x nr by a register-blocked micro-kernel that broadcasts values of
// op(A) against vectors of op(B). Each kc-deep pass sweeps micro-panels of op(A) (mr rows x kc, in
// L1 while a kernel call reads them) over blocks of op(B) (kc x nc, kept in L2 while every
// micro-panel of A passes over them). An operand is copied into contiguous buffers only where its
// layout calls for it: transposed, rows of A a multiple of 4 KiB apart, rows of B far enough apart
// to crowd L2's sets. Otherwise the kernel reads the rows in place, which keeps small products
// free of packing overhead. A product with N much smaller than a tile is computed transposed, and
// a large one is split over the thread pool by rows or by columns, or, when K is long against M
// and N (a weight gradient summed over every time step), by K.
#include "weft/runtime/gemm.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "weft/runtime/error.h"
#include "weft/runtime/fast_math.h"
#include "weft/runtime/thread_pool.h"

namespace weft {

constexpr std::align_val_t kAlignedBufferAlignment{64};

AlignedBuffer::AlignedBuffer(std::size_t bytes)
    : data_(static_cast<std::byte*>(
          ::operator new(std::max<std::size_t>(bytes, 1), kAlignedBufferAlignment))) {}

void AlignedBuffer::Free::operator()(std::byte* p) const {
  ::operator delete(p, kAlignedBufferAlignment);
}

namespace {

// GCC vector extensions instead of intrinsics: one kernel source serves AVX-512, AVX2 and the
// 16-byte baseline (SSE2, NEON); only the multiply-add is an intrinsic (mul_add below).
#if defined(__AVX512F__)
constexpr int vector_bytes = 64;
constexpr int vector_registers = 32;
#elif defined(__AVX__)
constexpr int vector_bytes = 32;
constexpr int vector_registers = 16;
#else
constexpr int vector_bytes = 16;
constexpr int vector_registers = 16;
#endif
typedef float FloatVector __attribute__((vector_size(vector_bytes)));
typedef double DoubleVector __attribute__((vector_size(vector_bytes)));

template <typename T>
struct VectorOf;
template <>
struct VectorOf<float> {
  using type = FloatVector;
};
template <>
struct VectorOf<double> {
  using type = DoubleVector;
};

template <typename T>
struct Tile {
  using Vector = typename VectorOf<T>::type;
  static constexpr int lanes = vector_bytes / sizeof(T);
  static constexpr int vectors = 2;           // per tile row
  static constexpr int nr = vectors * lanes;  // tile columns: 32 floats with AVX-512
  // Tile rows: mr * vectors accumulators, the B vectors and a broadcast must fit the registers.
  // 8 (16 accumulators) with AVX-512 also divides the usual batch sizes.
  static constexpr int mr = vector_registers >= 32 ? 8 : 6;
  static constexpr int64_t kc = 256;             // depth of one pass: the A micro-panel fills 8 KiB
  static constexpr int64_t b_block = 384 << 10;  // bytes of B kept in L2 (1 MiB or more per core)
  static constexpr int64_t a_block = 2 << 20;    // bytes of packed A, read from L3 block by block
};

// acc + a * b, in one rounding where the target has FMA. Written out rather than left to GCC's
// contraction of `acc += a * b`, which its tuning for some CPUs (-march=znver2: "avoid FMA
// chains") declines for a single accumulator: the loops of one source would then round
// differently from one instantiation to another, and a copy of halves must sum as its floats do.
template <typename V, typename T>
V mul_add(T a, V b, V acc) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>)
    return std::bit_cast<V>(
        _mm512_fmadd_ps(_mm512_set1_ps(a), std::bit_cast<__m512>(b), std::bit_cast<__m512>(acc)));
  else
    return std::bit_cast<V>(
        _mm512_fmadd_pd(_mm512_set1_pd(a), std::bit_cast<__m512d>(b), std::bit_cast<__m512d>(acc)));
#elif defined(__FMA__) && defined(__AVX__)
  if constexpr (std::is_same_v<T, float>)
    return std::bit_cast<V>(
        _mm256_fmadd_ps(_mm256_set1_ps(a), std::bit_cast<__m256>(b), std::bit_cast<__m256>(acc)));
  else
    return std::bit_cast<V>(
        _mm256_fmadd_pd(_mm256_set1_pd(a), std::bit_cast<__m256d>(b), std::bit_cast<__m256d>(acc)));
#else
  return acc + a * b;
#endif
}

template <typename V, typename T>
V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Half-precision copies (PackedB): where the target converts 16 halves to floats in one
// instruction (AVX-512), the copy of a float matrix whose values are all halves
// (Sequential::quantize) holds them in 2 bytes each. A product of one row reads half the bytes
// (1 x 128 x 512 on Zen 5: 1.2 us against 1.7) and computes exactly what it would from the floats,
// as each half converts back to the float it was made from. Eight at a time (AVX2 and F16C) the
// conversions cost more than the bytes save: 3.7 us against 2.64 from floats on Zen 2.
#if defined(__AVX512F__) && defined(__F16C__)
#define WEFT_HALF_COPIES 1  // a macro too: what only such a build has is compiled only there
#else
#define WEFT_HALF_COPIES 0
#endif
constexpr bool half_copies = WEFT_HALF_COPIES;

#if WEFT_HALF_COPIES
template <typename V>
V load(const std::uint16_t* p) {
  // Masked with every lane: GCC 12 warns about the unmasked intrinsic's undefined pass-through.
  return std::bit_cast<V>(
      _mm512_maskz_cvtph_ps(0xffff, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
}

float element(const std::uint16_t* p) { return _cvtsh_ss(*p); }

// `count` floats into halves; false, at the first float that is not exactly a half.
bool halves_of(const float* floats, int64_t count, std::uint16_t* halves) {
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const __m256 in = _mm256_loadu_ps(floats + i);
    const __m128i converted = _mm256_cvtps_ph(in, _MM_FROUND_TO_NEAREST_INT);
    if (_mm256_movemask_ps(_mm256_cmp_ps(_mm256_cvtph_ps(converted), in, _CMP_EQ_OQ)) != 0xff)
      return false;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(halves + i), converted);
  }
  for (; i < count; ++i) {
    halves[i] = _cvtss_sh(floats[i], _MM_FROUND_TO_NEAREST_INT);
    if (_cvtsh_ss(halves[i]) != floats[i]) return false;
  }
  return true;
}
#endif

template <typename T>
T element(const T* p) {
  return *p;
}

// bfloat16 copies (PackedB): a float whose low 16 bits are all zero (Sequential::quantize's
// "bfloat16") is its high half. A copy of a float matrix whose values are all such floats holds
// them in 2 bytes each, in pairs: in each group of two vectors' worth of columns, word i holds
// column i in its low half and column lanes + i in its high half, so that one shift and one mask
// make the group's two vectors of floats. Half the bytes at no conversion instruction: 1 x 160 x
// 512 from L2 took 1.06 us on Zen 5, against 1.37 from halves (one conversion a vector) and 2.1
// from floats. Eight floats at a time the product is bound by its FMAs, not its bytes (AVX2 code
// on the same Zen 5: 2.60 us against 2.56 from floats), and without FMA slower than floats (a W4
// step 6.1 us against 5.4 in SSE2 code), so only AVX-512 builds make such copies.
#if defined(__AVX512F__)
#define WEFT_BFLOAT16_COPIES 1  // a macro too: what only such a build has is compiled only there
#else
#define WEFT_BFLOAT16_COPIES 0
#endif
constexpr bool bfloat16_copies = WEFT_BFLOAT16_COPIES;

#if WEFT_BFLOAT16_COPIES
typedef std::uint32_t WordVector __attribute__((vector_size(vector_bytes)));
constexpr int64_t bfloat16_group = 2 * vector_bytes / static_cast<int64_t>(sizeof(float));

// The floats of the bfloat16 pair `word` holds: column i's, then column lanes + i's.
std::pair<FloatVector, FloatVector> bfloat16_pair(WordVector word) {
  return {std::bit_cast<FloatVector>(word << 16), std::bit_cast<FloatVector>(word & 0xffff0000u)};
}

// `width` floats at `row`, one group of a bfloat16 copy's row (zero past `width`), into `out`;
// false, writing nothing more, at the first float with low bits set.
bool bfloat16_group_of(const float* row, int64_t width, std::uint32_t* out) {
  constexpr int64_t lanes = bfloat16_group / 2;
  std::uint32_t bits[bfloat16_group] = {};
  for (int64_t j = 0; j < width; ++j) {
    bits[j] = std::bit_cast<std::uint32_t>(row[j]);
    if ((bits[j] & 0xffffu) != 0) return false;
  }
  for (int64_t i = 0; i < lanes; ++i) out[i] = (bits[i] >> 16) | bits[lanes + i];
  return true;
}
#endif

template <typename T, typename V>
void store(T* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

// `x`, which the optimiser cannot see through: a product passed through it is not fused into the
// sum it joins (GCC fuses either product of alpha * x + beta * c into an FMA, and not the same
// one in every instantiation, where a copy of halves must give exactly what its floats give), and
// a value loaded from memory stays in a register rather than being loaded again by each
// instruction that reads it.
template <typename V>
V opaque(V x) {
#if defined(__x86_64__)
  asm("" : "+v"(x));
#elif defined(__aarch64__)
  asm("" : "+w"(x));
#endif
  return x;
}

// Unrolls a loop over tile rows or vectors completely. Without it GCC unrolls them only after
// deciding to keep the accumulator array on the stack, and every kernel call pays to spill it.
#define WEFT_UNROLL _Pragma("GCC unroll 16")

// C[0:rows, 0:nr] = alpha * a * b + beta * C (+ bias, nr values added to each row after the rest,
// unless null), where `b` has kc rows of nr values, ldb apart, and `a` is either a packed
// micro-panel (k-major, mr values per k of which the first `rows` are used) or, a_in_place, rows
// of A itself, lda apart.
template <typename T, int rows, bool a_in_place>
void micro_kernel(int64_t kc, const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc,
                  T alpha, T beta, const T* bias) {
  using P = Tile<T>;
  using V = typename P::Vector;
  // Start fetching the C tile now so that its cache misses overlap the k loop instead of stalling
  // the stores at the end; a large C (a projection over all time steps) is rarely in cache.
  WEFT_UNROLL for (int i = 0; i < rows; ++i) {
    WEFT_UNROLL for (int byte = 0; byte < P::nr * static_cast<int>(sizeof(T)); byte += 64) {
      __builtin_prefetch(reinterpret_cast<const char*>(c + i * ldc) + byte, 1);
    }
  }
  // A short tile has too few accumulators to cover the FMA latency, so it also splits k into
  // interleaved partial sums.
  constexpr int splits = rows >= 4 ? 1 : 4 / rows;
  V acc[splits][rows][P::vectors];
  WEFT_UNROLL for (int s = 0; s < splits; ++s) {
    WEFT_UNROLL for (int i = 0; i < rows; ++i) {
      WEFT_UNROLL for (int v = 0; v < P::vectors; ++v) acc[s][i][v] = V{};
    }
  }
  const auto step = [&](int s, int64_t k) {
    const T* bk = b + k * ldb;
    V bv[P::vectors];
    // In registers: GCC would otherwise fold the load into every row's FMA where registers are
    // to spare (4 rows), and the tile's loads, not its FMAs, would set its pace (1.5x as long).
    WEFT_UNROLL for (int v = 0; v < P::vectors; ++v) bv[v] = opaque(load<V>(bk + v * P::lanes));
    WEFT_UNROLL for (int i = 0; i < rows; ++i) {
      const T ai = a_in_place ? a[i * lda + k] : a[k * P::mr + i];
      WEFT_UNROLL for (int v = 0; v < P::vectors; ++v) acc[s][i][v] =
          mul_add(ai, bv[v], acc[s][i][v]);
    }
  };
  int64_t k = 0;
  for (; k + splits <= kc; k += splits) {
    WEFT_UNROLL for (int s = 0; s < splits; ++s) step(s, k + s);
  }
  for (; k < kc; ++k) step(0, k);
  WEFT_UNROLL for (int s = 1; s < splits; ++s) {
    WEFT_UNROLL for (int i = 0; i < rows; ++i) {
      WEFT_UNROLL for (int v = 0; v < P::vectors; ++v) acc[0][i][v] += acc[s][i][v];
    }
  }
  WEFT_UNROLL for (int i = 0; i < rows; ++i) {
    WEFT_UNROLL for (int v = 0; v < P::vectors; ++v) {
      T* cv = c + i * ldc + v * P::lanes;
      // opaque: GCC would fuse alpha * acc into the add of beta * C in some kernels and not in
      // others, and a bias row must not change how C rounds.
      V result = opaque(alpha * acc[0][i][v]);
      if (beta != T(0)) result += beta * load<V>(cv);  // beta == 0 must not read C
      if (bias != nullptr) result += load<V>(bias + v * P::lanes);
      store(cv, result);
    }
  }
}

template <typename T>
using MicroKernel = void (*)(int64_t, const T*, int64_t, const T*, int64_t, T*, int64_t, T, T,
                             const T*);

template <typename T, bool a_in_place, std::size_t... rows>
constexpr std::array<MicroKernel<T>, sizeof...(rows)> make_kernels(std::index_sequence<rows...>) {
  return {&micro_kernel<T, static_cast<int>(rows) + 1, a_in_place>...};
}

// kernels<T, a_in_place>[rows - 1] computes a tile with `rows` rows.
template <typename T, bool a_in_place>
constexpr auto kernels = make_kernels<T, a_in_place>(std::make_index_sequence<Tile<T>::mr>{});

// Grow-only 64-byte aligned buffers, one set per thread, so steady-state calls never allocate.
class Scratch {
 public:
  template <typename T>
  T* get(std::size_t count) {
    const std::size_t bytes = count * sizeof(T);
    if (bytes > bytes_) {
      data_ = AlignedBuffer(bytes);
      bytes_ = bytes;
    }
    return reinterpret_cast<T*>(data_.data());
  }

 private:
  AlignedBuffer data_;
  std::size_t bytes_ = 0;
};

thread_local Scratch a_scratch;
thread_local Scratch b_scratch;
thread_local Scratch c_scratch;  // the partial products of a split of K

// One gemm call, or the slice of C that one thread computes. C's columns are c_cs apart: 1, except
// when gemm computes C^T = op(B)^T op(A)^T instead.
template <typename T>
struct Operands {
  Trans ta, tb;
  int64_t m, n, k;
  T alpha;
  const T* a;
  int64_t lda;
  const T* b;
  int64_t ldb;
  T beta;
  T* c;
  int64_t ldc;
  int64_t c_cs = 1;
  const T* bias = nullptr;  // N values added to each row of C last, or none
};

// One butterfly stage of an in-register transpose of `lanes` vectors: swaps bit b of the row
// index with bit b of the column index, pairing row i with row i + b.
template <typename V, int lanes, int b, std::size_t... c>
void transpose_stage(V (&r)[lanes], std::index_sequence<c...>) {
  WEFT_UNROLL for (int i = 0; i < lanes; ++i) {
    if ((i & b) != 0) continue;
    const V x = r[i];
    const V y = r[i | b];
    r[i] = __builtin_shufflevector(x, y, ((c & b) != 0 ? lanes + c - b : c)...);
    r[i | b] = __builtin_shufflevector(x, y, ((c & b) != 0 ? lanes + c : c + b)...);
  }
}

template <typename V, int lanes, int b = 1>
void transpose_lanes(V (&r)[lanes]) {
  if constexpr (b < lanes) {
    transpose_stage<V, lanes, b>(r, std::make_index_sequence<lanes>{});
    transpose_lanes<V, lanes, 2 * b>(r);
  }
}

// dst[k * ld_dst + i] = src[i * ld_src + k] for i < rows and k < lanes: one vector per row in, one
// per k out, log2(lanes) shuffle stages instead of lanes * rows scalar moves.
template <typename T, int rows>
void transpose_tile(const T* src, int64_t ld_src, T* dst, int64_t ld_dst) {
  using P = Tile<T>;
  using V = typename P::Vector;
  static_assert(rows <= P::lanes);
  V r[P::lanes];
  WEFT_UNROLL for (int i = 0; i < P::lanes; ++i) r[i] = i < rows ? load<V>(src + i * ld_src) : V{};
  transpose_lanes(r);
  WEFT_UNROLL for (int k = 0; k < P::lanes; ++k) {
    std::memcpy(dst + k * ld_dst, &r[k], rows * sizeof(T));
  }
}

// Copies op(A)[i0 : i0 + rows, p0 : p0 + kc] into a micro-panel: dst[k * mr + i].
template <typename T>
void pack_a(const Operands<T>& op, int64_t i0, int rows, int64_t p0, int64_t kc, T* dst) {
  using P = Tile<T>;
  constexpr int mr = P::mr;
  if (op.ta == Trans::yes) {
    const T* a = op.a + p0 * op.lda + i0;
    if (rows == mr) {  // a fixed-size copy is a single vector move
      for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * mr, a + k * op.lda, sizeof(T) * mr);
      return;
    }
    for (int64_t k = 0; k < kc; ++k) std::copy(a + k * op.lda, a + k * op.lda + rows, dst + k * mr);
    return;
  }
  // Rows of A run along k: transpose them lanes deep, in slabs of rows that divide the panel.
  constexpr int slab = [] {
    int rows_per_slab = std::min(P::mr, P::lanes);
    while (P::mr % rows_per_slab != 0) --rows_per_slab;
    return rows_per_slab;
  }();
  const int64_t k_tiles = rows == mr ? kc / P::lanes * P::lanes : 0;
  const T* a = op.a + i0 * op.lda + p0;
  for (int64_t k = 0; k < k_tiles; k += P::lanes) {
    for (int i = 0; i < mr; i += slab) {
      transpose_tile<T, slab>(a + i * op.lda + k, op.lda, dst + k * mr + i, mr);
    }
  }
  for (int i = 0; i < rows; ++i) {
    for (int64_t k = k_tiles; k < kc; ++k) dst[k * mr + i] = a[i * op.lda + k];
  }
}

// Copies op(B)[p0 : p0 + kc, j0 : j0 + cols] into a micro-panel: dst[k * nr + j], zero past cols
// so that the kernel's unused lanes hold no NaN or denormal.
template <typename T>
void pack_b_panel(const Operands<T>& op, int64_t p0, int64_t kc, int64_t j0, int cols, T* dst) {
  using P = Tile<T>;
  constexpr int nr = P::nr;
  if (cols < nr) {
    for (int64_t k = 0; k < kc; ++k) std::fill(dst + k * nr + cols, dst + (k + 1) * nr, T(0));
  }
  if (op.tb == Trans::no) {
    const T* b = op.b + p0 * op.ldb + j0;
    for (int64_t k = 0; k < kc; ++k) std::copy(b + k * op.ldb, b + k * op.ldb + cols, dst + k * nr);
    return;
  }
  // Rows of B run along k: transpose lanes x lanes squares, then the ragged right and bottom.
  const T* b = op.b + j0 * op.ldb + p0;
  const int64_t k_tiles = kc / P::lanes * P::lanes;
  const int j_tiles = cols / P::lanes * P::lanes;
  for (int j = 0; j < j_tiles; j += P::lanes) {
    for (int64_t k = 0; k < k_tiles; k += P::lanes) {
      transpose_tile<T, P::lanes>(b + j * op.ldb + k, op.ldb, dst + k * nr + j, nr);
    }
  }
  for (int j = 0; j < cols; ++j) {
    for (int64_t k = j < j_tiles ? k_tiles : 0; k < kc; ++k) dst[k * nr + j] = b[j * op.ldb + k];
  }
}

// Packs op(B)[p0 : p0 + kc, j0 : j0 + nc] as consecutive micro-panels, or, in place, only a
// ragged last panel, so that the kernel never reads past the end of a row of B.
template <typename T>
void pack_b(const Operands<T>& op, int64_t p0, int64_t kc, int64_t j0, int64_t nc, bool in_place,
            T* dst) {
  constexpr int nr = Tile<T>::nr;
  const int64_t full = nc / nr * nr;  // columns in full panels
  if (!in_place && op.tb == Trans::no) {
    // A few rows at a time across all panels: panel by panel would jump ldb at every step, which
    // no hardware prefetcher follows once ldb spans a page, and row by row would scatter every
    // store to another panel (kc * nr apart, the same L1 set each time).
    constexpr int64_t rows_per_sweep = 8;
    for (int64_t k0 = 0; k0 < kc; k0 += rows_per_sweep) {
      const int64_t k1 = std::min(kc, k0 + rows_per_sweep);
      for (int64_t j = 0; j < full; j += nr) {
        for (int64_t k = k0; k < k1; ++k) {  // a fixed-size copy: a few vector moves
          std::memcpy(dst + j * kc + k * nr, op.b + (p0 + k) * op.ldb + j0 + j, sizeof(T) * nr);
        }
      }
    }
  } else if (!in_place) {
    for (int64_t j = 0; j < full; j += nr) pack_b_panel(op, p0, kc, j0 + j, nr, dst + j * kc);
  }
  if (full < nc) pack_b_panel(op, p0, kc, j0 + full, static_cast<int>(nc - full), dst + full * kc);
}

// Whether the kernel may broadcast op(A) straight from A's rows instead of a packed micro-panel.
// Packing an untransposed A transposes it, which costs a good part of the multiply when N is
// small; reading in place is as fast, unless the rows are a multiple of 4 KiB apart: then all mr
// of them share one L1 set and evict each other, and only a narrow product still comes out ahead.
// (A transposed A packs by plain copies.)
template <typename T>
bool read_a_in_place(const Operands<T>& op) {
  constexpr int64_t l1_set_period = 4096;  // bytes between addresses that share an L1 set
  return op.ta == Trans::no &&
         (op.lda * int64_t{sizeof(T)} % l1_set_period != 0 || op.n <= 4 * Tile<T>::nr);
}

// Whether the kernel may read a kc-deep block of B's rows where they are instead of packing it.
// The block must stay in L2 while every row panel of A passes over it: its rows are ldb apart,
// and once they span more than L2 the block's lines crowd into a fraction of L2's sets (ldb a
// power of two is the common, worst case) and evict each other.
template <typename T>
bool read_b_in_place(const Operands<T>& op, int64_t kc) {
  constexpr int64_t max_span = 512 << 10;
  return op.tb == Trans::no && kc * op.ldb * int64_t{sizeof(T)} <= max_span;
}

template <typename T>
void gemm_serial(const Operands<T>& op) {
  using P = Tile<T>;
  constexpr int mr = P::mr;
  constexpr int nr = P::nr;
  const auto round_up = [](int64_t x, int64_t unit) { return (x + unit - 1) / unit * unit; };
  const int64_t kc_max = std::min(op.k, P::kc);
  const int64_t mc_max = std::max<int64_t>(mr, P::a_block / int64_t{sizeof(T)} / kc_max / mr * mr);
  const int64_t nc_max = std::max<int64_t>(nr, P::b_block / int64_t{sizeof(T)} / kc_max / nr * nr);
  const int64_t mc_alloc = round_up(std::min(mc_max, op.m), mr);
  const int64_t nc_alloc = round_up(std::min(nc_max, op.n), nr);
  const bool a_in_place = read_a_in_place(op);
  T* a_pack = a_in_place ? nullptr : a_scratch.get<T>(static_cast<std::size_t>(mc_alloc * kc_max));
  T* b_pack = b_scratch.get<T>(static_cast<std::size_t>(nc_alloc * kc_max));
  alignas(64) T edge[mr * nr];

  for (int64_t ic = 0; ic < op.m; ic += mc_max) {
    const int64_t mc = std::min(mc_max, op.m - ic);
    for (int64_t pc = 0; pc < op.k; pc += kc_max) {
      const int64_t kc = std::min(kc_max, op.k - pc);
      const T beta = pc == 0 ? op.beta : T(1);  // later passes accumulate onto the first
      const bool last_pass = pc + kc == op.k;
      // Packed once per pass and reused for every block of B, so a wide N does not repack it.
      for (int64_t ir = 0; ir < mc && !a_in_place; ir += mr) {
        const int rows = static_cast<int>(std::min<int64_t>(mr, mc - ir));
        pack_a(op, ic + ir, rows, pc, kc, a_pack + ir * kc);
      }
      for (int64_t jc = 0; jc < op.n; jc += nc_max) {
        const int64_t nc = std::min(nc_max, op.n - jc);
        const bool in_place = read_b_in_place(op, kc);
        pack_b(op, pc, kc, jc, nc, in_place, b_pack);
        for (int64_t ir = 0; ir < mc; ir += mr) {
          const int rows = static_cast<int>(std::min<int64_t>(mr, mc - ir));
          const MicroKernel<T> kernel =
              a_in_place ? kernels<T, true>[rows - 1] : kernels<T, false>[rows - 1];
          const T* a = a_in_place ? op.a + (ic + ir) * op.lda + pc : a_pack + ir * kc;
          for (int64_t jr = 0; jr < nc; jr += nr) {
            const int cols = static_cast<int>(std::min<int64_t>(nr, nc - jr));
            const bool packed = !in_place || cols < nr;
            const T* b = packed ? b_pack + jr * kc : op.b + pc * op.ldb + jc + jr;
            const int64_t ldb = packed ? nr : op.ldb;
            T* c = op.c + (ic + ir) * op.ldc + (jc + jr) * op.c_cs;
            const T* bias = last_pass && op.bias != nullptr ? op.bias + jc + jr : nullptr;
            if (cols == nr && op.c_cs == 1) {
              kernel(kc, a, op.lda, b, ldb, c, op.ldc, op.alpha, beta, bias);
              continue;
            }
            // A ragged or strided tile goes through a buffer so the kernel never touches C past N.
            kernel(kc, a, op.lda, b, ldb, edge, nr, op.alpha, T(0), nullptr);
            for (int i = 0; i < rows; ++i) {
              for (int j = 0; j < cols; ++j) {
                T& cij = c[i * op.ldc + j * op.c_cs];
                const T sum = beta == T(0) ? edge[i * nr + j] : edge[i * nr + j] + beta * cij;
                cij = bias != nullptr ? sum + bias[j] : sum;
              }
            }
          }
        }
      }
    }
  }
}

// C's columns [j, j + lanes) from their sums `acc`, finished as row_gemm finishes each column:
// alpha * sum, then beta * C added in one rounding, then the bias. Unless `whole`, only those
// below op.n, through a spare vector, so that nothing past C's row is touched.
template <bool whole, typename T>
[[gnu::always_inline]] inline void finish_row_columns(const Operands<T>& op, int64_t j,
                                                      typename Tile<T>::Vector acc) {
  using V = typename Tile<T>::Vector;
  constexpr int64_t lanes = Tile<T>::lanes;
  const int64_t count = whole ? lanes : std::min(lanes, op.n - j);
  if (count <= 0) return;
  const auto bytes = static_cast<size_t>(count) * sizeof(T);
  const auto load_columns = [&](const T* row) {
    V v{};
    if constexpr (whole)
      v = load<V>(row);
    else
      std::memcpy(&v, row, bytes);
    return v;
  };
  V result = opaque(op.alpha * acc);
  if (op.beta != T(0)) result = mul_add(op.beta, load_columns(op.c + j), result);
  if (op.bias != nullptr) result += load_columns(op.bias + j);
  if constexpr (whole)
    store(op.c + j, result);
  else
    std::memcpy(op.c + j, &result, bytes);
}

// One row of C = alpha * (a row of op(A)) * B + beta * C, B not transposed (a streaming step of
// batch 1): B (at `b`, of elements E: T, or halves of float) is read row after row, contiguously,
// into `vectors` accumulators per block of columns, where the tiled path would pack B (its rows
// are far apart) for one row of A.
template <typename T, int vectors, typename E>
int64_t row_times_b(const Operands<T>& op, const E* b, int64_t j0) {
  using V = typename Tile<T>::Vector;
  constexpr int64_t lanes = Tile<T>::lanes;
  const int64_t a_step = op.ta == Trans::no ? 1 : op.lda;
  for (; j0 + vectors * lanes <= op.n; j0 += vectors * lanes) {
    V acc[vectors] = {};
    for (int64_t k = 0; k < op.k; ++k) {
      const T a = op.a[k * a_step];
      const E* row = b + k * op.ldb + j0;
      WEFT_UNROLL for (int v = 0; v < vectors; ++v) acc[v] =
          mul_add(a, load<V>(row + v * lanes), acc[v]);
    }
    WEFT_UNROLL for (int v = 0; v < vectors; ++v)
        finish_row_columns<true>(op, j0 + v * lanes, acc[v]);
  }
  return j0;
}

// row_times_b's product, B at `b` with rows op.ldb apart.
template <typename T, typename E>
void row_gemm(const Operands<T>& op, const E* b) {
  int64_t j = row_times_b<T, 16>(op, b, 0);
  j = row_times_b<T, 1>(op, b, j);
  const int64_t a_step = op.ta == Trans::no ? 1 : op.lda;
  for (; j < op.n; ++j) {
    T sum = 0;
    // Fused by hand: GCC contracts `sum += a * b` in some instantiations and not in others, and
    // a copy of halves must sum exactly as its floats do.
    for (int64_t k = 0; k < op.k; ++k)
      sum = fast::mul_add(op.a[k * a_step], element(b + k * op.ldb + j), sum);
    const T product = opaque(op.alpha * sum);
    const T result = op.beta == T(0) ? product : fast::mul_add(op.beta, op.c[j], product);
    op.c[j] = op.bias != nullptr ? result + op.bias[j] : result;
  }
}

#if WEFT_BFLOAT16_COPIES
// row_gemm from one block of a bfloat16 copy (`b`, its rows `row_words` apart), `groups` groups
// of columns a pass from group g0 on; the next group.
template <int groups>
int64_t row_times_bfloat16(const Operands<float>& op, const std::uint32_t* b, int64_t row_words,
                           int64_t g0) {
  constexpr int64_t lanes = Tile<float>::lanes;
  const int64_t a_step = op.ta == Trans::no ? 1 : op.lda;
  for (; (g0 + groups - 1) * bfloat16_group < op.n; g0 += groups) {
    FloatVector acc[2 * groups] = {};
    for (int64_t k = 0; k < op.k; ++k) {
      const float a = op.a[k * a_step];
      const std::uint32_t* row = b + k * row_words + g0 * lanes;
      WEFT_UNROLL for (int g = 0; g < groups; ++g) {
        const auto [low, high] = bfloat16_pair(load<WordVector>(row + g * lanes));
        acc[2 * g] = mul_add(a, low, acc[2 * g]);
        acc[2 * g + 1] = mul_add(a, high, acc[2 * g + 1]);
      }
    }
    const int64_t j0 = g0 * bfloat16_group;
    if (j0 + groups * bfloat16_group <= op.n) {
      WEFT_UNROLL for (int v = 0; v < 2 * groups; ++v)
          finish_row_columns<true>(op, j0 + v * lanes, acc[v]);
    } else {
      for (int v = 0; v < 2 * groups; ++v) finish_row_columns<false>(op, j0 + v * lanes, acc[v]);
    }
  }
  return g0;
}

// row_gemm from a block of a bfloat16 copy: the same sums in the same order as from its floats.
void row_gemm_bfloat16(const Operands<float>& op, const std::uint32_t* b) {
  const int64_t groups = (op.n + bfloat16_group - 1) / bfloat16_group;
  const int64_t row_words = groups * bfloat16_group / 2;
  row_times_bfloat16<1>(op, b, row_words, row_times_bfloat16<8>(op, b, row_words, 0));
}
#endif

// The columns of one row_times_b pass: the block width of PackedB.
template <typename T>
constexpr int64_t row_block_columns = 16 * Tile<T>::lanes;

// The copies of B that gemm reads instead of B on this thread (PackedBScope).
thread_local std::span<const PackedB* const> packed_operands;

// row_gemm from PackedB's copy of op.b: each block of columns is a B of its own, its rows
// contiguous, and each column's sum is taken in the same order as from B itself.
template <typename T>
void row_gemm_packed(const Operands<T>& op, const PackedB& packed) {
  for (int64_t j0 = 0; j0 < op.n; j0 += packed.block_columns()) {
    Operands<T> block = op;
    block.n = std::min(packed.block_columns(), op.n - j0);
    block.ldb = block.n;
    block.c = op.c + j0;
    if (op.bias != nullptr) block.bias = op.bias + j0;
#if WEFT_BFLOAT16_COPIES
    if constexpr (std::is_same_v<T, float>) {
      if (packed.holds_bfloat16()) {
        row_gemm_bfloat16(block, packed.block<std::uint32_t>(j0));
        continue;
      }
    }
#endif
    if constexpr (half_copies && std::is_same_v<T, float>) {
      if (packed.holds_halves()) {
        row_gemm(block, packed.block<std::uint16_t>(j0));
        continue;
      }
    }
    row_gemm(block, packed.block<T>(j0));
  }
}

// The pool's workers are awake between a step's products, but a product split across cores
// still moves its operands and its result from one core's caches to the other's. The steady
// stream of small products of an RNN step is better left on one core: split, W2's per-step
// products (128 x 64 x 256, 4 MFLOP) made its LSTM step 15% slower, and W3's weight gradients
// (64 x 256 x 768, 25 MFLOP) its step 11% slower. Products of 50 MFLOP and more (W1's, W2's
// weight gradients and input projections) gain from the split.
constexpr double parallel_min_flops = 3e7;

// C += op.bias on each row, for the paths whose kernels do not add it as they store C.
template <typename T>
void add_bias(const Operands<T>& op) {
  if (op.bias == nullptr) return;
  for (int64_t i = 0; i < op.m; ++i) {
    T* row = op.c + i * op.ldc;
    for (int64_t j = 0; j < op.n; ++j) row[j * op.c_cs] += op.bias[j];
  }
}

// Whether a product split in parts splits K. Split by rows, every part reads all of op(B); by
// columns, all of op(A): min(M, N) x K values read twice. Split by K, each part reads its share of
// both and computes all of C, and the partial Cs are summed after: M x N values more for each
// further part. With K at least 4x the larger of M and N the K split reads less, and the threads
// stream operands that no other core reads (gemm_bench's 64 x 256 x 12800, A transposed: 318
// GFLOP/s on 2 Zen 5 cores against 137 split by columns, and OpenBLAS's 145-176). Each part is
// whole kc-deep passes.
template <typename T>
bool splits_k(const Operands<T>& op) {
  return op.k >= 4 * std::max(op.m, op.n);
}

// The panels of rows (split_m) or of columns that a split of C hands out whole.
template <typename T>
int64_t panels(const Operands<T>& op, bool split_m) {
  return split_m ? (op.m + Tile<T>::mr - 1) / Tile<T>::mr : (op.n + Tile<T>::nr - 1) / Tile<T>::nr;
}

// Splitting M makes every part pack all of B, splitting N all of A: split the larger side.
template <typename T>
bool splits_rows(const Operands<T>& op) {
  return op.m >= op.n ? panels(op, true) >= 2 : panels(op, false) < 2;
}

// The kc-deep passes over K.
template <typename T>
int64_t passes(const Operands<T>& op) {
  return (op.k + Tile<T>::kc - 1) / Tile<T>::kc;
}

// C = alpha op(A) op(B) + beta C as `parts` products over consecutive runs of K's passes, run by
// `run_parts` (the pool's parallel_for or share): the first into C, the others into partial Cs in
// the caller's scratch, added to C after, in order (the sums round differently from one
// thread's, the same on every run).
template <typename T, typename RunParts>
void gemm_split_k(const Operands<T>& op, int64_t parts, RunParts run_parts) {
  const int64_t k_passes = passes(op);
  T* partials = c_scratch.get<T>(static_cast<std::size_t>(op.m * op.n * (parts - 1)));
  run_parts(parts, [&](int64_t lo, int64_t hi) {
    for (int64_t part = lo; part < hi; ++part) {
      const int64_t k0 = std::min(op.k, k_passes * part / parts * Tile<T>::kc);
      const int64_t k1 = std::min(op.k, k_passes * (part + 1) / parts * Tile<T>::kc);
      Operands<T> slice = op;
      slice.k = k1 - k0;
      slice.a += op.ta == Trans::no ? k0 : k0 * op.lda;
      slice.b += op.tb == Trans::no ? k0 * op.ldb : k0;
      slice.bias = nullptr;  // added to the sum of the parts
      if (part > 0) {
        slice.c = partials + (part - 1) * op.m * op.n;
        slice.ldc = op.n;
        slice.c_cs = 1;
        slice.beta = T(0);
      }
      gemm_serial(slice);
    }
  });
  for (int64_t part = 1; part < parts; ++part) {
    const T* partial = partials + (part - 1) * op.m * op.n;
    for (int64_t i = 0; i < op.m; ++i) {
      T* row = op.c + i * op.ldc;
      for (int64_t j = 0; j < op.n; ++j) row[j * op.c_cs] += partial[i * op.n + j];
    }
  }
  add_bias(op);
}

// C as `parts` products of whole panels of rows (split_m) or of columns, spread as evenly as
// they go, run by `run_parts`. Each tile of C is computed as the whole product computes it, so
// the results are bit-identical to gemm_serial's however the parts are run.
template <typename T, typename RunParts>
void gemm_split_panels(const Operands<T>& op, bool split_m, int64_t parts, RunParts run_parts) {
  using P = Tile<T>;
  const int64_t whole = panels(op, split_m);
  run_parts(parts, [&](int64_t lo, int64_t hi) {
    for (int64_t part = lo; part < hi; ++part) {
      const int64_t first = whole * part / parts;
      const int64_t last = whole * (part + 1) / parts;
      Operands<T> slice = op;
      if (split_m) {
        const int64_t i0 = first * P::mr;
        slice.m = std::min(last * P::mr, op.m) - i0;
        slice.a += op.ta == Trans::no ? i0 * op.lda : i0;
        slice.c += i0 * op.ldc;
      } else {
        const int64_t j0 = first * P::nr;
        slice.n = std::min(last * P::nr, op.n) - j0;
        slice.b += op.tb == Trans::no ? j0 : j0 * op.ldb;
        slice.c += j0 * op.c_cs;
        if (slice.bias != nullptr) slice.bias += j0;
      }
      gemm_serial(slice);
    }
  });
}

// Inside a parallel_for body (a half of a batch on each core) a large product runs in parts of
// at least this many flops, offered to the pool's idle threads (ThreadPool::share): a part is
// long against the hand-off (a few hundred ns between this VM's cores), and short enough that a
// core done with its own half can take a fair share of the other's last products.
constexpr double shared_part_flops = 5e7;
// And in at most this many.
constexpr int64_t max_shared_parts = 4;
// Every part of a split by rows reads all of op(B) again, by columns all of op(A), and every
// part of K adds a partial C. A product is split only where that repeated operand stays in a
// core's L2 (the sentiment model's products: B or C of 64 KB). W5's weight gradients
// (512 x 2048 x 3200, A transposed), split by columns, packed 6.5 MB of A again for each part:
// its training step took 1.7% longer in four parts (alternating in one process), 20% in 64.
constexpr int64_t max_repeated_bytes = 256 << 10;

// A product inside a parallel_for body: on this thread, in parts that idle threads may take.
// The parts follow from the shape alone, so the results never depend on who ran them: a split of
// panels is bit-identical to one thread's whole product, a split of K (a weight gradient summed
// over every time step) sums its parts in order.
template <typename T>
void gemm_shared(const Operands<T>& op, double flops) {
  const auto share = [](int64_t parts, const std::function<void(int64_t, int64_t)>& body) {
    default_thread_pool().share(0, parts, 1, body);
  };
  const auto stays_in_l2 = [](int64_t elements) {
    return elements * int64_t{sizeof(T)} <= max_repeated_bytes;
  };
  const int64_t wanted =
      std::min(max_shared_parts, static_cast<int64_t>(flops / shared_part_flops));
  if (splits_k(op)) {
    const int64_t parts = std::min(wanted, passes(op));
    if (parts < 2 || !stays_in_l2(op.m * op.n)) return gemm_serial(op);
    return gemm_split_k(op, parts, share);
  }
  const bool split_m = splits_rows(op);
  const int64_t parts = std::min(wanted, panels(op, split_m));
  if (parts < 2 || !stays_in_l2(split_m ? op.k * op.n : op.m * op.k)) return gemm_serial(op);
  gemm_split_panels(op, split_m, parts, share);
}

// The tiled product, on the pool's threads where it pays.
template <typename T>
void gemm_tiled(const Operands<T>& op) {
  const double flops =
      2.0 * static_cast<double>(op.m) * static_cast<double>(op.n) * static_cast<double>(op.k);
  ThreadPool& pool = default_thread_pool();
  if (ThreadPool::in_parallel_region()) {
    if (pool.num_threads() >= 2 && flops >= 2 * shared_part_flops) return gemm_shared(op, flops);
    return gemm_serial(op);
  }
  const int threads = pool.num_threads();
  const auto parallel = [&](int64_t parts, const std::function<void(int64_t, int64_t)>& body) {
    pool.parallel_for(0, parts, 1, body);
  };
  if (threads >= 2 && flops >= parallel_min_flops && splits_k(op) &&
      op.k >= 2 * threads * Tile<T>::kc) {
    gemm_split_k(op, threads, parallel);
    return;
  }
  const bool split_m = splits_rows(op);
  const int64_t parts = std::min<int64_t>(threads, panels(op, split_m));
  if (parts < 2 || flops < parallel_min_flops) {
    gemm_serial(op);
    return;
  }
  gemm_split_panels(op, split_m, parts, parallel);
}

template <typename T>
void gemm_impl(const Operands<T>& op) {
  WEFT_CHECK(op.m >= 0 && op.n >= 0 && op.k >= 0, "gemm: negative size M={} N={} K={}", op.m, op.n,
             op.k);
  const int64_t a_cols = op.ta == Trans::no ? op.k : op.m;
  const int64_t b_cols = op.tb == Trans::no ? op.n : op.k;
  WEFT_CHECK(op.lda >= std::max<int64_t>(1, a_cols), "gemm: lda={} is less than {}", op.lda,
             a_cols);
  WEFT_CHECK(op.ldb >= std::max<int64_t>(1, b_cols), "gemm: ldb={} is less than {}", op.ldb,
             b_cols);
  WEFT_CHECK(op.ldc >= std::max<int64_t>(1, op.n), "gemm: ldc={} is less than N={}", op.ldc, op.n);
  if (op.m == 0 || op.n == 0) return;
  if (op.k == 0 || op.alpha == T(0)) {
    for (int64_t i = 0; i < op.m; ++i) {
      T* row = op.c + i * op.ldc;
      if (op.beta == T(0)) {
        std::fill(row, row + op.n, T(0));
      } else if (op.beta != T(1)) {
        for (int64_t j = 0; j < op.n; ++j) row[j] *= op.beta;
      }
    }
    add_bias(op);
    return;
  }

  if (op.m == 1 && op.tb == Trans::no) {
    const auto packed = std::ranges::find_if(packed_operands, [&](const PackedB* copy) {
      return copy->copies(op.b, op.k, op.n, op.ldb);
    });
    if (packed != packed_operands.end())
      row_gemm_packed(op, **packed);
    else
      row_gemm(op, op.b);
    return;
  }
  // With N a fraction of a tile most vector lanes would idle; C^T = op(B)^T op(A)^T puts M on them
  // (and the bias down C^T's columns, added after).
  if (op.n * 4 <= Tile<T>::nr && op.m > op.n) {
    const auto flip = [](Trans t) { return t == Trans::no ? Trans::yes : Trans::no; };
    gemm_tiled<T>({.ta = flip(op.tb),
                   .tb = flip(op.ta),
                   .m = op.n,
                   .n = op.m,
                   .k = op.k,
                   .alpha = op.alpha,
                   .a = op.b,
                   .lda = op.ldb,
                   .b = op.a,
                   .ldb = op.lda,
                   .beta = op.beta,
                   .c = op.c,
                   .ldc = 1,
                   .c_cs = op.ldc});
    add_bias(op);
    return;
  }
  gemm_tiled(op);
}

}  // namespace

bool PackedB::stores_halves() { return half_copies; }

bool PackedB::stores_bfloat16() { return bfloat16_copies; }

bool PackedB::reorders(int64_t n, size_t element_bytes) {
  return n >
         (element_bytes == sizeof(double) ? row_block_columns<double> : row_block_columns<float>);
}

template <typename T>
PackedB::PackedB(const T* b, int64_t k, int64_t n, int64_t ldb)
    : source_(b),
      k_(k),
      n_(n),
      ldb_(ldb),
      element_bytes_(sizeof(T)),
      block_columns_(row_block_columns<T>) {
  WEFT_CHECK(k_ >= 0 && n_ >= 0 && ldb_ >= std::max<int64_t>(1, n_),
             "PackedB: a {} x {} matrix with rows {} apart", k_, n_, ldb_);
  const auto as_is = [](int64_t width) { return width; };
  // Makes the copy of `values` in elements E, a row of a block of `width` columns
  // `row_values(width)` of them (at least `width`), by calling `copy_row(source, width,
  // destination)` for each row of each block in the copy's order while it returns true; whether
  // it always did.
  const auto try_values = [&]<typename E>(Values values, const auto& row_values,
                                          const auto& copy_row) {
    int64_t count = 0;
    for (int64_t j0 = 0; j0 < n_; j0 += block_columns_)
      count += k_ * row_values(std::min(block_columns_, n_ - j0));
    values_ = values;
    bytes_ = count * static_cast<int64_t>(sizeof(E));
    data_ = AlignedBuffer(static_cast<size_t>(bytes_));
    E* out = reinterpret_cast<E*>(data_.data());
    for (int64_t j0 = 0; j0 < n_; j0 += block_columns_) {
      const int64_t width = std::min(block_columns_, n_ - j0);
      for (int64_t row = 0; row < k_; ++row, out += row_values(width))
        if (!copy_row(b + row * ldb_ + j0, width, out)) return false;
    }
    return true;
  };
#if WEFT_BFLOAT16_COPIES
  if constexpr (std::is_same_v<T, float>) {
    // A pair of bfloat16 values a word, each group of columns whole: half a group's words each.
    // Only the last block can be ragged, so block() finds every block at 2 bytes a value.
    static_assert(row_block_columns<float> % bfloat16_group == 0);
    const auto bfloat16_words = [](int64_t width) {
      return (width + bfloat16_group - 1) / bfloat16_group * (bfloat16_group / 2);
    };
    const auto copy_groups = [](const float* row, int64_t width, std::uint32_t* out) {
      for (int64_t j = 0; j < width; j += bfloat16_group, out += bfloat16_group / 2)
        if (!bfloat16_group_of(row + j, std::min(bfloat16_group, width - j), out)) return false;
      return true;
    };
    if (try_values.template operator()<std::uint32_t>(Values::bfloat16, bfloat16_words,
                                                      copy_groups))
      return;
  }
#endif
#if WEFT_HALF_COPIES
  if constexpr (std::is_same_v<T, float>)
    if (try_values.template operator()<std::uint16_t>(Values::halves, as_is, halves_of)) return;
#endif
  try_values.template operator()<T>(Values::elements, as_is,
                                    [](const T* row, int64_t width, T* out) {
                                      std::copy_n(row, width, out);
                                      return true;
                                    });
}

template PackedB::PackedB(const float*, int64_t, int64_t, int64_t);
template PackedB::PackedB(const double*, int64_t, int64_t, int64_t);

PackedBScope::PackedBScope(std::span<const PackedB* const> packed)
    : previous_(std::exchange(packed_operands, packed)) {}

PackedBScope::~PackedBScope() { packed_operands = previous_; }

void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
          const float* bias) {
  gemm_impl<float>({ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 1, bias});
}

void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc,
          const double* bias) {
  gemm_impl<double>({ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 1, bias});
}

}  // namespace weft
