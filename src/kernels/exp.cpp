// Vectorized exponential (see the header for the method and its accuracy).
#include "kernels/exp.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/vector_units.hpp"

namespace klay::kernels {
namespace {

// ln 2 = kLn2High + kLn2Low, the first with its low 32 bits zero, so k·kLn2High is exact for |k| < 2^20.
constexpr double kLn2High = 0x1.62e42fee00000p-1;
constexpr double kLn2Low = 0x1.a39ef35793c76p-33;
constexpr double kLog2E = 0x1.71547652b82fep+0;
constexpr double kLargestReduced = 708.0;
// x + kRoundToInteger − kRoundToInteger is x rounded to the nearest integer (|x| < 2^51), and the
// low bits of x + kRoundToInteger hold that integer.
constexpr double kRoundToInteger = 0x1.8p52;

constexpr double inverse_factorial(int n) { return n <= 1 ? 1.0 : inverse_factorial(n - 1) / n; }

// True when some value lies outside the range reduced here (or is not finite).
KLAY_VECTOR_WIDTH_CLONES
bool reduced_exp(const double* __restrict x, double* __restrict y, int64_t n) {
  constexpr double c2 = inverse_factorial(2), c3 = inverse_factorial(3), c4 = inverse_factorial(4),
                   c5 = inverse_factorial(5), c6 = inverse_factorial(6), c7 = inverse_factorial(7),
                   c8 = inverse_factorial(8), c9 = inverse_factorial(9), c10 = inverse_factorial(10),
                   c11 = inverse_factorial(11), c12 = inverse_factorial(12), c13 = inverse_factorial(13);
  int64_t outside = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    outside |= static_cast<int64_t>(!(std::abs(v) <= kLargestReduced));
    const double shifted = v * kLog2E + kRoundToInteger;
    const double k = shifted - kRoundToInteger;  // x ≈ k·ln 2
    const double r = (v - k * kLn2High) - k * kLn2Low;
    const double high = c7 + r * (c8 + r * (c9 + r * (c10 + r * (c11 + r * (c12 + r * c13)))));
    const double p = 1.0 + r * (1.0 + r * (c2 + r * (c3 + r * (c4 + r * (c5 + r * (c6 + r * high))))));
    // 2^k: the exponent field k + 1023 (in 1…2046 for |x| ≤ 708) from the low bits of `shifted`.
    uint64_t bits;
    std::memcpy(&bits, &shifted, sizeof bits);
    const uint64_t scale_bits = (bits + 1023) << 52;
    double scale;
    std::memcpy(&scale, &scale_bits, sizeof scale);
    y[i] = p * scale;
  }
  return outside != 0;
}

}  // namespace

void exp_values(const double* x, double* y, int64_t n) {
  if (!reduced_exp(x, y, n)) return;
  for (int64_t i = 0; i < n; ++i)
    if (!(std::abs(x[i]) <= kLargestReduced)) y[i] = std::exp(x[i]);
}

}  // namespace klay::kernels
