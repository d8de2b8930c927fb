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
#include "kernels/exp.hpp"

namespace klay::kernels {

// A scalar activation f times its normalize2mom constant, with f' as ATen's backward computes it.
struct ScaledActivation {
  enum class Kind { identity, silu, ssp, tanh, abs, sigmoid, relu } kind = Kind::identity;
  double scale = 1.0;

  template <typename T>
  T value(T x) const {
    return unscaled(x) * static_cast<T>(scale);
  }
  template <typename T>
  T derivative(T x) const {
    switch (kind) {
      case Kind::identity: return T(1);
      case Kind::silu: {
        const T s = T(1) / (T(1) + std::exp(-x));
        return s * (T(1) + x * (T(1) - s)) * static_cast<T>(scale);
      }
      case Kind::ssp: {  // softplus with threshold 20
        const T z = std::exp(x);
        return (x > T(20) ? T(1) : z / (z + T(1))) * static_cast<T>(scale);
      }
      case Kind::tanh: {
        const T t = std::tanh(x);
        return (T(1) - t * t) * static_cast<T>(scale);
      }
      case Kind::abs: return (x > T(0) ? T(1) : x < T(0) ? T(-1) : T(0)) * static_cast<T>(scale);
      case Kind::sigmoid: {
        const T s = T(1) / (T(1) + std::exp(-x));
        return (T(1) - s) * s * static_cast<T>(scale);
      }
      case Kind::relu: return (x > T(0) ? T(1) : T(0)) * static_cast<T>(scale);
    }
    return T(0);
  }

  // value(x) and derivative(x), the same numbers, from one exponential where both need it.
  template <typename T>
  void value_and_derivative(T x, T& value, T& derivative) const {
    const T scale_t = static_cast<T>(scale);
    switch (kind) {
      case Kind::silu: {
        const T e = std::exp(-x), s = T(1) / (T(1) + e);
        value = x / (T(1) + e) * scale_t;
        derivative = s * (T(1) + x * (T(1) - s)) * scale_t;
        return;
      }
      case Kind::ssp: {
        const T z = std::exp(x);
        value = ((x > T(20) ? x : std::log1p(z)) - static_cast<T>(std::log(2.0))) * scale_t;
        derivative = (x > T(20) ? T(1) : z / (z + T(1))) * scale_t;
        return;
      }
      case Kind::tanh: {
        const T t = std::tanh(x);
        value = t * scale_t;
        derivative = (T(1) - t * t) * scale_t;
        return;
      }
      case Kind::sigmoid: {
        const T s = T(1) / (T(1) + std::exp(-x));
        value = s * scale_t;
        derivative = (T(1) - s) * s * scale_t;
        return;
      }
      default:
        value = this->value(x);
        derivative = this->derivative(x);
    }
  }

  // value(x_i) into `values` and derivative(x_i) into `derivatives`, either null when not wanted,
  // of n inputs at once (`values` may be x itself), the same numbers to rounding: SiLU, SSP and
  // the sigmoid take the one exponential both need from exp_values in one vectorized pass.
  // `scratch` grows to 2n doubles.
  template <typename T>
  void apply(const T* x, T* values, T* derivatives, int64_t n, std::vector<double>& scratch) const {
    const double* e = exponentials(x, n, scratch);
    switch (kind) {
      case Kind::silu:
        return each(x, e, values, derivatives, n, [](T xi, T ei, T& f, T& df) {
          const T s = T(1) / (T(1) + ei);
          f = xi / (T(1) + ei);
          df = s * (T(1) + xi * (T(1) - s));
        });
      case Kind::ssp:
        return each(x, e, values, derivatives, n, [](T xi, T z, T& f, T& df) {
          f = (xi > T(20) ? xi : std::log1p(z)) - static_cast<T>(std::log(2.0));
          df = xi > T(20) ? T(1) : z / (z + T(1));
        });
      case Kind::sigmoid:
        return each(x, e, values, derivatives, n, [](T, T ei, T& f, T& df) {
          f = T(1) / (T(1) + ei);
          df = (T(1) - f) * f;
        });
      default:
        for (int64_t i = 0; i < n; ++i) {
          const T xi = x[i];
          if (values) values[i] = value(xi);
          if (derivatives) derivatives[i] = derivative(xi);
        }
    }
  }

 private:
  // apply()'s loop for a function with exponentials: f(x_i, e_i, value, derivative), both unscaled.
  template <typename T, typename F>
  void each(const T* x, const double* e, T* values, T* derivatives, int64_t n, const F& f) const {
    const T scale_t = static_cast<T>(scale);
    for (int64_t i = 0; i < n; ++i) {
      T value, derivative;
      f(x[i], static_cast<T>(e[i]), value, derivative);
      if (values) values[i] = value * scale_t;
      if (derivatives) derivatives[i] = derivative * scale_t;
    }
  }

  // The exponentials apply() reads: e^-x for SiLU and the sigmoid, e^x for SSP,
  // none for the rest.
  template <typename T>
  const double* exponentials(const T* x, int64_t n, std::vector<double>& scratch) const {
    if (kind != Kind::silu && kind != Kind::ssp && kind != Kind::sigmoid) return nullptr;
    if (static_cast<int64_t>(scratch.size()) < 2 * n) scratch.resize(2 * n);
    const double sign = kind == Kind::ssp ? 1.0 : -1.0;
    for (int64_t i = 0; i < n; ++i) scratch[i] = sign * static_cast<double>(x[i]);
    exp_values(scratch.data(), scratch.data() + n, n);
    return scratch.data() + n;
  }

  template <typename T>
  T unscaled(T x) const {
    switch (kind) {
      case Kind::identity: return x;
      case Kind::silu: return x / (T(1) + std::exp(-x));
      case Kind::ssp: return (x > T(20) ? x : std::log1p(std::exp(x))) - static_cast<T>(std::log(2.0));
      case Kind::tanh: return std::tanh(x);
      case Kind::abs: return std::abs(x);
      case Kind::sigmoid: return T(1) / (T(1) + std::exp(-x));
      case Kind::relu: return x > T(0) ? x : T(0);
    }
    return x;
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
