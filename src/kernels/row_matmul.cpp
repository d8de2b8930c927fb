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
// Everything below is inlined into the AVX2 entry point, so compiled for it too.
#define KLAY_AVX2_BODY inline __attribute__((always_inline, target("avx2,fma")))

// One 256-bit register of T, and the operations the tiles use.
template <typename T>
struct Lanes;
template <>
struct Lanes<double> {
  using V = __m256d;
  static constexpr int kWidth = 4;
  KLAY_AVX2_BODY static V zero() { return _mm256_setzero_pd(); }
  KLAY_AVX2_BODY static V broadcast(const double* p) { return _mm256_broadcast_sd(p); }
  KLAY_AVX2_BODY static V load(const double* p) { return _mm256_loadu_pd(p); }
  KLAY_AVX2_BODY static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  KLAY_AVX2_BODY static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  KLAY_AVX2_BODY static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  KLAY_AVX2_BODY static __m256i mask(int lanes) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(lanes), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  KLAY_AVX2_BODY static V load(const double* p, __m256i m) { return _mm256_maskload_pd(p, m); }
  KLAY_AVX2_BODY static void store(double* p, V v, __m256i m) { _mm256_maskstore_pd(p, m, v); }
};
template <>
struct Lanes<float> {
  using V = __m256;
  static constexpr int kWidth = 8;
  KLAY_AVX2_BODY static V zero() { return _mm256_setzero_ps(); }
  KLAY_AVX2_BODY static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  KLAY_AVX2_BODY static V load(const float* p) { return _mm256_loadu_ps(p); }
  KLAY_AVX2_BODY static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  KLAY_AVX2_BODY static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  KLAY_AVX2_BODY static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  KLAY_AVX2_BODY static __m256i mask(int lanes) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  KLAY_AVX2_BODY static V load(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }
  KLAY_AVX2_BODY static void store(float* p, V v, __m256i m) { _mm256_maskstore_ps(p, m, v); }
};

// The leading dimensions of a, b, c and the elementwise factor (when there is one), and the inner size.
struct Operands {
  int64_t inner, lda, ldb, ldc, ldf;
};

// c[0:Rows, 0:Vectors·width] = a[0:Rows, :] · b[:, 0:Vectors·width], the sums over the inner index in
// ascending order, one fused multiply-add each, then times o.factor's entries where it is given;
// with Masked the last register holds only the lanes `last` selects. Rows × Vectors accumulators
// stay in registers (4 × 3 of the 16).
template <typename T, int Rows, int Vectors, bool Masked>
KLAY_AVX2_BODY void tile(const Operands& o, const T* a, const T* b, T* c, const T* factor, __m256i last) {
  using L = Lanes<T>;
  typename L::V acc[Rows][Vectors];
  for (int r = 0; r < Rows; ++r)
    for (int v = 0; v < Vectors; ++v) acc[r][v] = L::zero();
  for (int64_t k = 0; k < o.inner; ++k) {
    typename L::V row[Vectors];
    for (int v = 0; v < Vectors; ++v)
      row[v] = Masked && v == Vectors - 1 ? L::load(b + k * o.ldb + v * L::kWidth, last)
                                          : L::load(b + k * o.ldb + v * L::kWidth);
    for (int r = 0; r < Rows; ++r) {
      const typename L::V x = L::broadcast(a + r * o.lda + k);
      for (int v = 0; v < Vectors; ++v) acc[r][v] = L::fma(x, row[v], acc[r][v]);
    }
  }
  if (factor)
    for (int r = 0; r < Rows; ++r)
      for (int v = 0; v < Vectors; ++v) {
        const T* f = factor + r * o.ldf + v * L::kWidth;
        acc[r][v] = L::mul(acc[r][v], Masked && v == Vectors - 1 ? L::load(f, last) : L::load(f));
      }
  for (int r = 0; r < Rows; ++r)
    for (int v = 0; v < Vectors; ++v) {
      T* out = c + r * o.ldc + v * L::kWidth;
      if (Masked && v == Vectors - 1) L::store(out, acc[r][v], last);
      else L::store(out, acc[r][v]);
    }
}

// Rows of c, all columns, in tiles of three registers or two (never one where avoidable: a tile's
// accumulators are its independent chains of multiply-adds, and four are too few to fill the
// units); the last register of the last tile may be partial.
template <typename T, int Rows>
KLAY_AVX2_BODY void tile_rows(const Operands& o, int64_t cols, const T* a, const T* b, T* c, const T* factor) {
  constexpr int W = Lanes<T>::kWidth;
  const int lanes = static_cast<int>(cols % W);
  const __m256i all = Lanes<T>::mask(W), last = Lanes<T>::mask(lanes);
  for (int64_t j = 0, left = (cols + W - 1) / W; left > 0;) {
    const int64_t take = left == 4 || left == 2 ? 2 : (left == 1 ? 1 : 3);
    left -= take;
    const bool partial = left == 0 && lanes;
    const T* f = factor ? factor + j : nullptr;
    if (take == 3 && partial) tile<T, Rows, 3, true>(o, a, b + j, c + j, f, last);
    else if (take == 3) tile<T, Rows, 3, false>(o, a, b + j, c + j, f, all);
    else if (take == 2 && partial) tile<T, Rows, 2, true>(o, a, b + j, c + j, f, last);
    else if (take == 2) tile<T, Rows, 2, false>(o, a, b + j, c + j, f, all);
    else if (partial) tile<T, Rows, 1, true>(o, a, b + j, c + j, f, last);
    else tile<T, Rows, 1, false>(o, a, b + j, c + j, f, all);
    j += take * W;
  }
}

template <typename T>
KLAY_AVX2_ENTRY void tiled_rows_avx2(const Operands& o, int64_t rows, int64_t cols, const T* a, const T* b, T* c,
                                     const T* factor) {
  int64_t i = 0;
  const auto factor_rows = [&](int64_t row) { return factor ? factor + row * o.ldf : nullptr; };
  // One register across: eight rows for eight chains of multiply-adds.
  if (cols <= Lanes<T>::kWidth)
    for (; i + 8 <= rows; i += 8) tile_rows<T, 8>(o, cols, a + i * o.lda, b, c + i * o.ldc, factor_rows(i));
  for (; i + 4 <= rows; i += 4) tile_rows<T, 4>(o, cols, a + i * o.lda, b, c + i * o.ldc, factor_rows(i));
  for (; i < rows; ++i) tile_rows<T, 1>(o, cols, a + i * o.lda, b, c + i * o.ldc, factor_rows(i));
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
