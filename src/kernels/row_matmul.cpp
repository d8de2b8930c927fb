// Row-sliced matrix products (see the header for why).
#include "kernels/row_matmul.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "kernels/vector_units.hpp"

#ifdef KLAY_HAVE_AVX2_ENTRY
#include <immintrin.h>
#endif

namespace klay::kernels {
namespace {

// Fewer rows than this per thread and the slices cost more in calls than they save.
constexpr int64_t kFewestRowsPerSlice = 64;

// The products the register tiles take: the right operand stays in the second-level cache (measured
// on this project's machine: ahead of OpenBLAS up to 256 KiB, behind it from 512 KiB on), and the
// left one is read once. Larger ones go to BLAS, whose packing pays for itself there.
constexpr int64_t kLargestRightBytes = 256 * 1024;

#ifdef KLAY_HAVE_AVX2_ENTRY
// Everything below is inlined into the AVX2 or AVX-512 entry point, so compiled for it too.
#define KLAY_AVX2_BODY inline __attribute__((always_inline, target("avx2,fma")))
#define KLAY_AVX512_BODY inline __attribute__((always_inline, target("arch=x86-64-v4")))

// One vector register of T, and the operations the tiles use: 256-bit AVX2 (Lanes) and 512-bit
// AVX-512 (Lanes512), each with its kind of mask for the partial last register of a row.
template <typename T>
struct Lanes;
template <>
struct Lanes<double> {
  using T = double;
  using V = __m256d;
  using Mask = __m256i;
  static constexpr int kWidth = 4;
  KLAY_AVX2_BODY static V zero() { return _mm256_setzero_pd(); }
  KLAY_AVX2_BODY static V broadcast(const double* p) { return _mm256_broadcast_sd(p); }
  KLAY_AVX2_BODY static V load(const double* p) { return _mm256_loadu_pd(p); }
  KLAY_AVX2_BODY static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  KLAY_AVX2_BODY static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  KLAY_AVX2_BODY static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  KLAY_AVX2_BODY static Mask mask(int lanes) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(lanes), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  KLAY_AVX2_BODY static V load(const double* p, Mask m) { return _mm256_maskload_pd(p, m); }
  KLAY_AVX2_BODY static void store(double* p, V v, Mask m) { _mm256_maskstore_pd(p, m, v); }
};
template <>
struct Lanes<float> {
  using T = float;
  using V = __m256;
  using Mask = __m256i;
  static constexpr int kWidth = 8;
  KLAY_AVX2_BODY static V zero() { return _mm256_setzero_ps(); }
  KLAY_AVX2_BODY static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  KLAY_AVX2_BODY static V load(const float* p) { return _mm256_loadu_ps(p); }
  KLAY_AVX2_BODY static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  KLAY_AVX2_BODY static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  KLAY_AVX2_BODY static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  KLAY_AVX2_BODY static Mask mask(int lanes) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  KLAY_AVX2_BODY static V load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  KLAY_AVX2_BODY static void store(float* p, V v, Mask m) { _mm256_maskstore_ps(p, m, v); }
};
template <typename T>
struct Lanes512;
template <>
struct Lanes512<double> {
  using T = double;
  using V = __m512d;
  using Mask = __mmask8;
  static constexpr int kWidth = 8;
  KLAY_AVX512_BODY static V zero() { return _mm512_setzero_pd(); }
  KLAY_AVX512_BODY static V broadcast(const double* p) { return _mm512_set1_pd(*p); }
  KLAY_AVX512_BODY static V load(const double* p) { return _mm512_loadu_pd(p); }
  KLAY_AVX512_BODY static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  KLAY_AVX512_BODY static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  KLAY_AVX512_BODY static void store(double* p, V v) { _mm512_storeu_pd(p, v); }
  KLAY_AVX512_BODY static Mask mask(int lanes) { return static_cast<Mask>((1u << lanes) - 1); }
  KLAY_AVX512_BODY static V load(const double* p, Mask m) { return _mm512_maskz_loadu_pd(m, p); }
  KLAY_AVX512_BODY static void store(double* p, V v, Mask m) { _mm512_mask_storeu_pd(p, m, v); }
};
template <>
struct Lanes512<float> {
  using T = float;
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int kWidth = 16;
  KLAY_AVX512_BODY static V zero() { return _mm512_setzero_ps(); }
  KLAY_AVX512_BODY static V broadcast(const float* p) { return _mm512_set1_ps(*p); }
  KLAY_AVX512_BODY static V load(const float* p) { return _mm512_loadu_ps(p); }
  KLAY_AVX512_BODY static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  KLAY_AVX512_BODY static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  KLAY_AVX512_BODY static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  KLAY_AVX512_BODY static Mask mask(int lanes) { return static_cast<Mask>((1u << lanes) - 1); }
  KLAY_AVX512_BODY static V load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  KLAY_AVX512_BODY static void store(float* p, V v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
};

// The leading dimensions of a, b, c and the elementwise factor (when there is one), and the inner size.
struct Operands {
  int64_t inner, lda, ldb, ldc, ldf;
};

// The tiles, once for each instruction set.
#define KLAY_TILE_BODY KLAY_AVX2_BODY
namespace avx2 {
#include "kernels/row_matmul_tiles.inc"
}  // namespace avx2
#undef KLAY_TILE_BODY
#define KLAY_TILE_BODY KLAY_AVX512_BODY
namespace avx512 {
#include "kernels/row_matmul_tiles.inc"
}  // namespace avx512
#undef KLAY_TILE_BODY

template <typename T>
KLAY_AVX2_ENTRY void tiled_rows_avx2(const Operands& o, int64_t rows, int64_t cols, const T* a, const T* b, T* c,
                                     const T* factor) {
  avx2::tiled_rows<Lanes<T>, 3>(o, rows, cols, a, b, c, factor);
}
// On CPUs whose 512-bit units are full width (AMD Zen 5, this project's machine: 130-134 against
// 63-67 GFLOP/s of float64 multiply-adds per core, the benchmarks' `peak:` line) the products run
// at twice the AVX2 rate.
template <typename T>
KLAY_AVX512_ENTRY void tiled_rows_avx512(const Operands& o, int64_t rows, int64_t cols, const T* a, const T* b, T* c,
                                         const T* factor) {
  avx512::tiled_rows<Lanes512<T>, 4>(o, rows, cols, a, b, c, factor);
}

bool tiles_take(const at::Tensor& out, const at::Tensor& a, const at::Tensor& b) {
  const at::ScalarType type = a.scalar_type();
  return wide_vector_units() && a.device().is_cpu() && (type == at::kDouble || type == at::kFloat) &&
         b.scalar_type() == type && out.scalar_type() == type &&
         static_cast<int64_t>(b.numel() * b.element_size()) <= kLargestRightBytes && a.stride(1) == 1 &&
         out.stride(1) == 1 && !a.is_conj() && !b.is_conj();
}
#endif

}  // namespace

bool rows_times_takes(int64_t bytes) { return bytes <= kLargestRightBytes; }

template <typename T>
void rows_times(const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, int64_t rows, int64_t inner,
                int64_t cols, const T* factor, int64_t ldf) {
#ifdef KLAY_HAVE_AVX2_ENTRY
  if (avx512_vector_units()) {
    tiled_rows_avx512<T>(Operands{inner, lda, ldb, ldc, ldf}, rows, cols, a, b, c, factor);
    return;
  }
  if (wide_vector_units()) {
    tiled_rows_avx2<T>(Operands{inner, lda, ldb, ldc, ldf}, rows, cols, a, b, c, factor);
    return;
  }
#endif
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      T sum = 0;
      for (int64_t k = 0; k < inner; ++k) sum += a[i * lda + k] * b[k * ldb + j];
      c[i * ldc + j] = factor ? sum * factor[i * ldf + j] : sum;
    }
}
template void rows_times<double>(const double*, int64_t, const double*, int64_t, double*, int64_t, int64_t, int64_t,
                                 int64_t, const double*, int64_t);
template void rows_times<float>(const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t, int64_t,
                                int64_t, const float*, int64_t);

void row_matmul_out(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, const at::Tensor& factor) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && out.dim() == 2 && a.size(1) == b.size(0) &&
                  out.size(0) == a.size(0) && out.size(1) == b.size(1),
              "row_matmul: cannot write ", a.sizes(), " x ", b.sizes(), " to ", out.sizes());
  TORCH_CHECK(!factor.defined() || factor.sizes() == out.sizes(), "row_matmul: the factor is ", factor.sizes(),
              ", the product ", out.sizes());
  const int64_t rows = a.size(0);
  const int64_t slices = std::max<int64_t>(
      1, std::min<int64_t>(at::in_parallel_region() ? 1 : at::get_num_threads(), rows / kFewestRowsPerSlice));
#ifdef KLAY_HAVE_AVX2_ENTRY
  if (rows > 0 && tiles_take(out, a, b) && (!factor.defined() || (factor.scalar_type() == a.scalar_type() &&
                                                                   factor.stride(1) == 1 && !factor.is_conj()))) {
    // The tiles read b row by row, so it must be row-major.
    const at::Tensor b_row_major = b.stride(1) == 1 ? b : b.contiguous();
    at::parallel_for(0, slices, 1, [&](int64_t first, int64_t last) {
      AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "row_matmul", [&] {
        for (int64_t s = first; s < last; ++s) {
          const int64_t begin = rows * s / slices, end = rows * (s + 1) / slices;
          rows_times<scalar_t>(a.data_ptr<scalar_t>() + begin * a.stride(0), a.stride(0),
                               b_row_major.data_ptr<scalar_t>(), b_row_major.stride(0),
                               out.data_ptr<scalar_t>() + begin * out.stride(0), out.stride(0), end - begin, a.size(1),
                               out.size(1),
                               factor.defined() ? factor.data_ptr<scalar_t>() + begin * factor.stride(0) : nullptr,
                               factor.defined() ? factor.stride(0) : 0);
        }
      });
    });
    return;
  }
#endif
  if (slices <= 1) {
    at::mm_out(out, a, b);
    if (factor.defined()) out.mul_(factor);
    return;
  }
  // One slice per thread; inside the parallel region OpenBLAS runs each slice on the calling thread.
  // Grad mode is per thread and the workers' is on, which out= products refuse.
  at::parallel_for(0, slices, 1, [&](int64_t first, int64_t last) {
    const at::NoGradGuard no_grad;
    for (int64_t s = first; s < last; ++s) {
      const int64_t begin = rows * s / slices, end = rows * (s + 1) / slices;
      at::Tensor slice = out.narrow(0, begin, end - begin);
      at::mm_out(slice, a.narrow(0, begin, end - begin), b);
      if (factor.defined()) slice.mul_(factor.narrow(0, begin, end - begin));
    }
  });
}

at::Tensor row_matmul(const at::Tensor& a, const at::Tensor& b, const at::Tensor& factor) {
  if (at::GradMode::is_enabled() && (a.requires_grad() || b.requires_grad() || (factor.defined() && factor.requires_grad())))
    return factor.defined() ? at::mm(a, b) * factor : at::mm(a, b);
  at::Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
  row_matmul_out(out, a, b, factor);
  return out;
}

}  // namespace klay::kernels
