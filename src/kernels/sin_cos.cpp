// Vectorized sin and cos (see the header for the method and its accuracy).
#include "kernels/sin_cos.hpp"

#include <cmath>

#include "kernels/vector_units.hpp"

namespace klay::kernels {
namespace {

// π/2 = kHalfPiHigh + kHalfPiMiddle + kHalfPiLow. The first has 33 significant bits and the
// second 19, so q·kHalfPiHigh and q·kHalfPiMiddle are exact for |q| < 2^20; the last is the part
// of π/2 below the double nearest to it.
constexpr double kHalfPi = 0x1.921fb54442d18p+0;
constexpr double kHalfPiHigh = 0x1.921fb544p+0;
constexpr double kHalfPiMiddle = kHalfPi - kHalfPiHigh;
constexpr double kHalfPiLow = 0x1.1a62633145c07p-54;
constexpr double kTwoOverPi = 0.63661977236758134308;
constexpr double kLargestReduced = 0x1p20;
// x + kRoundToInteger − kRoundToInteger is x rounded to the nearest integer (|x| < 2^51).
constexpr double kRoundToInteger = 0x1.8p52;

constexpr double inverse_factorial(int n) { return n <= 1 ? 1.0 : inverse_factorial(n - 1) / n; }

// True when some angle lies outside the range reduced here (or is not finite).
KLAY_VECTOR_WIDTH_CLONES
bool reduced_sin_cos(const double* __restrict theta, double* __restrict sin_theta, double* __restrict cos_theta,
                     int64_t n) {
  // The Taylor coefficients ±1/k!, as constants of the loop.
  constexpr double s3 = -inverse_factorial(3), s5 = inverse_factorial(5), s7 = -inverse_factorial(7),
                   s9 = inverse_factorial(9), s11 = -inverse_factorial(11), s13 = inverse_factorial(13),
                   s15 = -inverse_factorial(15), s17 = inverse_factorial(17);
  constexpr double c4 = inverse_factorial(4), c6 = -inverse_factorial(6), c8 = inverse_factorial(8),
                   c10 = -inverse_factorial(10), c12 = inverse_factorial(12), c14 = -inverse_factorial(14),
                   c16 = inverse_factorial(16);
  int64_t outside = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = theta[i];
    outside |= static_cast<int64_t>(!(std::abs(x) <= kLargestReduced));
    const double q = (x * kTwoOverPi + kRoundToInteger) - kRoundToInteger;  // x ≈ q·π/2
    const double r = ((x - q * kHalfPiHigh) - q * kHalfPiMiddle) - q * kHalfPiLow;
    const double z = r * r;
    const double sin_r =
        r + r * z * (s3 + z * (s5 + z * (s7 + z * (s9 + z * (s11 + z * (s13 + z * (s15 + z * s17)))))));
    const double cos_r =
        1.0 - 0.5 * z + z * z * (c4 + z * (c6 + z * (c8 + z * (c10 + z * (c12 + z * (c14 + z * c16))))));
    // The quadrant q mod 4, in doubles so that the loop has one element type: floor(q/4) is q/4 − 3/8
    // rounded, as q/4 is a multiple of 1/4.
    const double quadrant = q - 4.0 * (((q * 0.25 - 0.375) + kRoundToInteger) - kRoundToInteger);
    const bool swapped = (quadrant == 1.0) | (quadrant == 3.0);
    const double sin_part = swapped ? cos_r : sin_r, cos_part = swapped ? sin_r : cos_r;
    sin_theta[i] = quadrant >= 2.0 ? -sin_part : sin_part;
    cos_theta[i] = (quadrant == 1.0) | (quadrant == 2.0) ? -cos_part : cos_part;
  }
  return outside != 0;
}

}  // namespace

void sin_cos(const double* theta, double* sin_theta, double* cos_theta, int64_t n) {
  if (!reduced_sin_cos(theta, sin_theta, cos_theta, n)) return;
  for (int64_t i = 0; i < n; ++i)
    if (!(std::abs(theta[i]) <= kLargestReduced)) {
      sin_theta[i] = std::sin(theta[i]);
      cos_theta[i] = std::cos(theta[i]);
    }
}

}  // namespace klay::kernels
