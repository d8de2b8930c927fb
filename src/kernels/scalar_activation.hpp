// A named scalar activation (e3nn::ScalarActivation) as the kernels evaluate it per element: f
// times its scale, and f' as ATen's backward computes it, so fused kernels agree with the
// composite path to rounding.
#pragma once
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "e3nn/activations.hpp"
#include "kernels/vector_units.hpp"

namespace klay::kernels {

// A scalar activation f times its normalize2mom constant, with f' as ATen's backward computes it.
struct ScaledActivation {
  enum class Kind { identity, silu, ssp, tanh, abs, sigmoid, relu } kind = Kind::identity;
  double scale = 1.0;

  // The sign of the exponential's argument: e^-x for SiLU and the sigmoid, e^x for SSP.
  static constexpr double exponent_sign(Kind k) { return k == Kind::ssp ? 1.0 : -1.0; }

  // f and f' (unscaled) of x from its exponential e = e^(exponent_sign·x), for the kinds that take one.
  template <Kind K, typename T>
  static KLAY_KERNEL_BODY void from_exponential(T x, T e, T& f, T& df) {
    if constexpr (K == Kind::ssp) {  // softplus with beta 1 and threshold 20, less log 2
      f = (x > T(20) ? x : std::log1p(e)) - static_cast<T>(std::log(2.0));
      df = x > T(20) ? T(1) : e / (e + T(1));
    } else {
      const T s = T(1) / (T(1) + e);
      f = K == Kind::silu ? x * s : s;
      df = K == Kind::silu ? s * (T(1) + x * (T(1) - s)) : (T(1) - s) * s;
    }
  }

  template <typename T>
  T value(T x) const {
    T f, df;
    value_and_derivative(x, f, df);
    return f;
  }
  template <typename T>
  T derivative(T x) const {
    T f, df;
    value_and_derivative(x, f, df);
    return df;
  }

  // value(x) and derivative(x) from one exponential where they take one.
  template <typename T>
  void value_and_derivative(T x, T& value, T& derivative) const {
    T f = x, df = T(1);
    switch (kind) {
      case Kind::identity: break;
      case Kind::silu: from_exponential<Kind::silu>(x, exponential<Kind::silu>(x), f, df); break;
      case Kind::ssp: from_exponential<Kind::ssp>(x, exponential<Kind::ssp>(x), f, df); break;
      case Kind::sigmoid: from_exponential<Kind::sigmoid>(x, exponential<Kind::sigmoid>(x), f, df); break;
      case Kind::tanh:
        f = std::tanh(x);
        df = T(1) - f * f;
        break;
      case Kind::abs:
        f = std::abs(x);
        df = x > T(0) ? T(1) : x < T(0) ? T(-1) : T(0);
        break;
      case Kind::relu:  // as ATen's: NaN passes through, with derivative 1
        f = x <= T(0) ? T(0) : x;
        df = x <= T(0) ? T(0) : T(1);
        break;
    }
    value = f * static_cast<T>(scale);
    derivative = df * static_cast<T>(scale);
  }

  // value(x_i) into `values` and derivative(x_i) into `derivatives`, either null when not wanted,
  // of n inputs at once (`values` may be x itself), the same numbers to rounding. SiLU, SSP and the
  // sigmoid run in one vectorized loop with their exponentials inline (scalar_activation.cpp).
  template <typename T>
  void apply(const T* x, T* values, T* derivatives, int64_t n) const;

  // e^(exponent_sign·x) as glibc computes it.
  template <Kind K, typename T>
  static T exponential(T x) {
    return std::exp(static_cast<T>(exponent_sign(K)) * x);
  }
};

// The kernels' form of `act` (identity for none); std::nullopt for an activation they do not know.
inline std::optional<ScaledActivation> scaled_activation(const std::optional<e3nn::ScalarActivation>& act) {
  using Kind = ScaledActivation::Kind;
  if (!act) return ScaledActivation{};
  static const std::vector<std::pair<std::string, Kind>> known = {
      {"silu", Kind::silu}, {"ssp", Kind::ssp},         {"tanh", Kind::tanh},
      {"abs", Kind::abs},   {"sigmoid", Kind::sigmoid}, {"relu", Kind::relu}};
  for (const auto& [name, kind] : known)
    if (act->name() == name) return ScaledActivation{kind, act->scale()};
  return std::nullopt;
}

}  // namespace klay::kernels
