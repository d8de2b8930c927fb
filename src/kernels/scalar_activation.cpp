// ScaledActivation::apply: SiLU, SSP and the sigmoid in one loop over the elements with their
// exponentials inline (reduced_exp), which the compiler vectorizes, built for AVX-512, AVX2+FMA
// and the x86-64 baseline, the CPU choosing; the other activations element by element.
#include "kernels/scalar_activation.hpp"

#include <cmath>
#include <cstdint>

#include "kernels/exp.hpp"
#include "kernels/vector_units.hpp"

namespace klay::kernels {
namespace {

using Kind = ScaledActivation::Kind;

// The loop is bound by the vector units' throughput, so what it need not compute it leaves out:
// the unwanted result, and the multiplication by a scale of 1 (the radial MLP's: exact either way).
template <Kind K, typename T, bool kValues, bool kDerivatives, bool kScaled>
KLAY_KERNEL_BODY void exponential_loop(const T* x, T* values, T* derivatives, int64_t n, T scale) {
  constexpr double sign = ScaledActivation::exponent_sign(K);
  for (int64_t i = 0; i < n; ++i) {
    const T xi = x[i];  // read before values[i] is written: values may be x
    T f, df;
    ScaledActivation::from_exponential<K, T>(xi, reduced_exp(static_cast<T>(sign) * xi), f, df);
    if constexpr (kValues) values[i] = kScaled ? f * scale : f;
    if constexpr (kDerivatives) derivatives[i] = kScaled ? df * scale : df;
  }
}

template <Kind K, typename T, bool kScaled>
KLAY_KERNEL_BODY void exponential_loops(const T* x, T* values, T* derivatives, int64_t n, T scale) {
  if (values && derivatives) exponential_loop<K, T, true, true, kScaled>(x, values, derivatives, n, scale);
  else if (values) exponential_loop<K, T, true, false, kScaled>(x, values, derivatives, n, scale);
  else if (derivatives) exponential_loop<K, T, false, true, kScaled>(x, values, derivatives, n, scale);
}

// True when reduced_exp takes every exponential of x (|x| ≤ kLargestReducedExp, all finite).
template <typename T>
KLAY_KERNEL_BODY bool all_reduced(const T* x, int64_t n) {
  int64_t outside = 0;
  for (int64_t i = 0; i < n; ++i) outside |= static_cast<int64_t>(outside_reduced_exp(x[i]));
  return outside == 0;
}

template <Kind K, typename T>
KLAY_KERNEL_BODY bool apply_reduced(const T* x, T* values, T* derivatives, int64_t n, T scale) {
  if (!all_reduced(x, n)) return false;
  if (scale == T(1)) exponential_loops<K, T, false>(x, values, derivatives, n, scale);
  else exponential_loops<K, T, true>(x, values, derivatives, n, scale);
  return true;
}

template <Kind K, typename T>
bool apply_reduced_baseline(const T* x, T* values, T* derivatives, int64_t n, T scale) {
  return apply_reduced<K, T>(x, values, derivatives, n, scale);
}
#ifdef KLAY_HAVE_AVX2_ENTRY
template <Kind K, typename T>
KLAY_AVX2_ENTRY bool apply_reduced_avx2(const T* x, T* values, T* derivatives, int64_t n, T scale) {
  return apply_reduced<K, T>(x, values, derivatives, n, scale);
}
template <Kind K, typename T>
KLAY_AVX512_ENTRY bool apply_reduced_avx512(const T* x, T* values, T* derivatives, int64_t n, T scale) {
  return apply_reduced<K, T>(x, values, derivatives, n, scale);
}
#endif

// The activation's loop over n elements, in the widest vector units there are; when some
// exponential lies outside reduced_exp's range, element by element with glibc's.
template <Kind K, typename T>
void apply_exponential_kind(const ScaledActivation& act, const T* x, T* values, T* derivatives, int64_t n) {
  const T scale = static_cast<T>(act.scale);
  if (KLAY_WIDEST_ENTRY(apply_reduced, K, T)(x, values, derivatives, n, scale)) return;
  for (int64_t i = 0; i < n; ++i) {
    const T xi = x[i];
    T f, df;
    ScaledActivation::from_exponential<K, T>(xi, ScaledActivation::exponential<K>(xi), f, df);
    if (values) values[i] = f * scale;
    if (derivatives) derivatives[i] = df * scale;
  }
}

}  // namespace

template <typename T>
void ScaledActivation::apply(const T* x, T* values, T* derivatives, int64_t n) const {
  switch (kind) {
    case Kind::silu: return apply_exponential_kind<Kind::silu, T>(*this, x, values, derivatives, n);
    case Kind::ssp: return apply_exponential_kind<Kind::ssp, T>(*this, x, values, derivatives, n);
    case Kind::sigmoid: return apply_exponential_kind<Kind::sigmoid, T>(*this, x, values, derivatives, n);
    default:
      for (int64_t i = 0; i < n; ++i) {
        T f, df;
        value_and_derivative(x[i], f, df);
        if (values) values[i] = f;
        if (derivatives) derivatives[i] = df;
      }
  }
}

template void ScaledActivation::apply<float>(const float*, float*, float*, int64_t) const;
template void ScaledActivation::apply<double>(const double*, double*, double*, int64_t) const;

}  // namespace klay::kernels
