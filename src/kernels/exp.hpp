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

// The largest |x| reduced_exp evaluates.
constexpr double kLargestReducedExp = 708.0;

constexpr double inverse_factorial(int n) { return n <= 1 ? 1.0 : inverse_factorial(n - 1) / n; }

// e^x for |x| ≤ kLargestReducedExp; the loops check the range themselves.
KLAY_KERNEL_BODY double reduced_exp(double x) {
  // ln 2 = ln2_high + ln2_low, the first with its low 32 bits zero, so k·ln2_high is exact for |k| < 2^20.
  constexpr double ln2_high = 0x1.62e42fee00000p-1, ln2_low = 0x1.a39ef35793c76p-33, log2_e = 0x1.71547652b82fep+0;
  // v + round_to_integer − round_to_integer is v rounded to the nearest integer (|v| < 2^51), and
  // the low bits of v + round_to_integer hold that integer.
  constexpr double round_to_integer = 0x1.8p52;
  constexpr double c2 = inverse_factorial(2), c3 = inverse_factorial(3), c4 = inverse_factorial(4),
                   c5 = inverse_factorial(5), c6 = inverse_factorial(6), c7 = inverse_factorial(7),
                   c8 = inverse_factorial(8), c9 = inverse_factorial(9), c10 = inverse_factorial(10),
                   c11 = inverse_factorial(11), c12 = inverse_factorial(12), c13 = inverse_factorial(13);
  const double shifted = x * log2_e + round_to_integer;
  const double k = shifted - round_to_integer;  // x ≈ k·ln 2
  const double r = (x - k * ln2_high) - k * ln2_low;
  // The terms from r^3 on in Estrin's scheme, the first three by Horner's rule: 7 dependent steps
  // rather than 13, so more elements' polynomials overlap in the pipeline, and the largest terms
  // still rounded last.
  const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
  const double tail = ((c3 + c4 * r) + (c5 + c6 * r) * r2) + ((c7 + c8 * r) + (c9 + c10 * r) * r2) * r4 +
                      ((c11 + c12 * r) + c13 * r2) * r8;
  const double p = 1.0 + r * (1.0 + r * (c2 + r * tail));
  // 2^k: the exponent field k + 1023 (in 1…2046 for |x| ≤ 708) from the low bits of `shifted`.
  uint64_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  const uint64_t scale_bits = (bits + 1023) << 52;
  double scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  return p * scale;
}

// True when reduced_exp does not take x (outside the range, or not finite).
KLAY_KERNEL_BODY bool outside_reduced_exp(double x) { return !(std::abs(x) <= kLargestReducedExp); }

// The largest |x| the float reduced_exp evaluates (e^-87 is still a normal float).
constexpr float kLargestReducedExpFloat = 87.0f;

// e^x in float for |x| ≤ kLargestReducedExpFloat, within about one unit in the last place of
// glibc's expf: the float activations' exponential, twice as many per vector as in double and a
// polynomial of degree 7 instead of 13. The same scheme as the double one: ln 2 in two parts (the
// first with its low 12 bits zero, so k·ln2_high is exact for |k| < 2^12), e^r for |r| ≤ ln 2 / 2
// to degree 7 (the next term is below 6e-9), 2^k put into the exponent bits.
KLAY_KERNEL_BODY float reduced_exp(float x) {
  constexpr float ln2_high = 0x1.62e400p-1f, ln2_low = 0x1.7f7d1cp-20f, log2_e = 0x1.715476p+0f;
  constexpr float round_to_integer = 0x1.8p23f;
  constexpr float c2 = 1.0f / 2, c3 = 1.0f / 6, c4 = 1.0f / 24, c5 = 1.0f / 120, c6 = 1.0f / 720, c7 = 1.0f / 5040;
  const float shifted = x * log2_e + round_to_integer;
  const float k = shifted - round_to_integer;
  const float r = (x - k * ln2_high) - k * ln2_low;
  const float r2 = r * r;
  const float tail = (c3 + c4 * r) + (c5 + c6 * r + c7 * r2) * r2;
  const float p = 1.0f + r * (1.0f + r * (c2 + r * tail));
  uint32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  const uint32_t scale_bits = (bits + 127) << 23;
  float scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  return p * scale;
}

// True when the float reduced_exp does not take x.
KLAY_KERNEL_BODY bool outside_reduced_exp(float x) { return !(std::abs(x) <= kLargestReducedExpFloat); }

}  // namespace klay::kernels
