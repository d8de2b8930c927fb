// e^x as one inline body for loops the compiler vectorizes (the activations' SiLU, sigmoid and
// softplus take one exponential per element, which glibc computes in one scalar call each), built
// into each loop's entry for the widest vector instructions the CPU has.
//
// Within about one unit in the last place of glibc for |x| ≤ 708: x = k·ln 2 + r with ln 2 in two
// parts (Cody-Waite, exact for that range), e^r for |r| ≤ ln 2 / 2 its Taylor polynomial cut where
// the next term is below 1e-17, and 2^k put into the exponent bits. The loops hand larger or
// non-finite values (and the subnormal results below e^-708) to std::exp (outside_reduced_exp).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/vector_units.hpp"

namespace klay::kernels {

// The largest |x| reduced_exp evaluates, per type (e^-87 is still a normal float).
constexpr double kLargestReducedExp = 708.0;
constexpr float kLargestReducedExpFloat = 87.0f;

constexpr double inverse_factorial(int n) { return n <= 1 ? 1.0 : inverse_factorial(n - 1) / n; }

// The constants of the range reduction. ln 2 = ln2_high + ln2_low, the first with its low bits zero
// so that k·ln2_high is exact for the k of the range. v + round_to_integer − round_to_integer is v
// rounded to the nearest integer, and the low bits of v + round_to_integer hold that integer.
template <typename T>
struct ExpReduction;
template <>
struct ExpReduction<double> {
  using Bits = uint64_t;
  static constexpr double ln2_high = 0x1.62e42fee00000p-1, ln2_low = 0x1.a39ef35793c76p-33,
                          log2_e = 0x1.71547652b82fep+0, round_to_integer = 0x1.8p52;
  static constexpr int mantissa_bits = 52, exponent_bias = 1023;
};
template <>
struct ExpReduction<float> {
  using Bits = uint32_t;
  static constexpr float ln2_high = 0x1.62e400p-1f, ln2_low = 0x1.7f7d1cp-20f, log2_e = 0x1.715476p+0f,
                         round_to_integer = 0x1.8p23f;
  static constexpr int mantissa_bits = 23, exponent_bias = 127;
};

// e^x = p(r)·2^k with x = k·ln 2 + r, |r| ≤ ln 2 / 2 (Cody-Waite): `polynomial` gives p from r, and
// 2^k goes into the exponent bits (the field k + bias is normal over the type's reduced range).
template <typename T, typename Polynomial>
KLAY_KERNEL_BODY T exp_by_reduction(T x, const Polynomial& polynomial) {
  using C = ExpReduction<T>;
  const T shifted = x * C::log2_e + C::round_to_integer;
  const T k = shifted - C::round_to_integer;  // x ≈ k·ln 2
  const T r = (x - k * C::ln2_high) - k * C::ln2_low;
  const T p = polynomial(r);
  typename C::Bits bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  const typename C::Bits scale_bits = (bits + C::exponent_bias) << C::mantissa_bits;
  T scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  return p * scale;
}

// e^x for |x| ≤ kLargestReducedExp; the loops check the range themselves. e^r to degree 13 (the
// next term below 1e-17).
KLAY_KERNEL_BODY double reduced_exp(double x) {
  return exp_by_reduction(x, [](double r) {
    constexpr double c2 = inverse_factorial(2), c3 = inverse_factorial(3), c4 = inverse_factorial(4),
                     c5 = inverse_factorial(5), c6 = inverse_factorial(6), c7 = inverse_factorial(7),
                     c8 = inverse_factorial(8), c9 = inverse_factorial(9), c10 = inverse_factorial(10),
                     c11 = inverse_factorial(11), c12 = inverse_factorial(12), c13 = inverse_factorial(13);
    // The terms from r^3 on in Estrin's scheme, the first three by Horner's rule: 7 dependent steps
    // rather than 13, so more elements' polynomials overlap in the pipeline, and the largest terms
    // still rounded last.
    const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    const double tail = ((c3 + c4 * r) + (c5 + c6 * r) * r2) + ((c7 + c8 * r) + (c9 + c10 * r) * r2) * r4 +
                        ((c11 + c12 * r) + c13 * r2) * r8;
    return 1.0 + r * (1.0 + r * (c2 + r * tail));
  });
}

// e^x in float for |x| ≤ kLargestReducedExpFloat, within about one unit in the last place of
// glibc's expf: the float activations' exponential, twice as many per vector as in double, e^r
// to degree 7 (the next term below 6e-9).
KLAY_KERNEL_BODY float reduced_exp(float x) {
  return exp_by_reduction(x, [](float r) {
    constexpr float c2 = 1.0f / 2, c3 = 1.0f / 6, c4 = 1.0f / 24, c5 = 1.0f / 120, c6 = 1.0f / 720,
                    c7 = 1.0f / 5040;
    const float r2 = r * r;
    const float tail = (c3 + c4 * r) + (c5 + c6 * r + c7 * r2) * r2;
    return 1.0f + r * (1.0f + r * (c2 + r * tail));
  });
}

// True when reduced_exp does not take x (outside the type's range, or not finite).
KLAY_KERNEL_BODY bool outside_reduced_exp(double x) { return !(std::abs(x) <= kLargestReducedExp); }
KLAY_KERNEL_BODY bool outside_reduced_exp(float x) { return !(std::abs(x) <= kLargestReducedExpFloat); }

}  // namespace klay::kernels
