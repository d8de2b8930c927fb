// The vectorized sin and cos against glibc's, over the angles the radial basis meets (up to tens
// of radians), the whole reduced range (|θ| ≤ 2^20), multiples of π/2 where one of them passes
// through zero, and the angles past the range and not finite that glibc evaluates.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/sin_cos.hpp"
#include "versus_glibc.hpp"

namespace klay::kernels {
namespace {

// max |sin_cos − glibc| over the angles, for sin and cos together, absolute or relative to glibc's
// value; NaN counts as a difference unless both are NaN.
double largest_difference(const std::vector<double>& theta, bool relative = false) {
  std::vector<double> s(theta.size()), c(theta.size());
  sin_cos(theta.data(), s.data(), c.data(), static_cast<int64_t>(theta.size()));
  double largest = 0;
  for (size_t i = 0; i < theta.size(); ++i)
    for (const auto& [ours, glibc] : {std::pair{s[i], std::sin(theta[i])}, std::pair{c[i], std::cos(theta[i])}}) {
      if (std::isnan(ours) && std::isnan(glibc)) continue;
      const double difference = std::abs(ours - glibc) / (relative ? std::abs(glibc) : 1.0);
      largest = std::isnan(difference) ? std::numeric_limits<double>::infinity() : std::max(largest, difference);
    }
  return largest;
}

TEST(SinCos, MatchesGlibcToTheLastPlaces) {
  EXPECT_LE(largest_difference(uniform(-40, 40, 100000, 1), true), kTwoUlp);
  EXPECT_LE(largest_difference(uniform(-1e-3, 1e-3, 10000, 2), true), kTwoUlp);
  EXPECT_LE(largest_difference(uniform(-0x1p20, 0x1p20, 100000, 3), true), kTwoUlp);
}

TEST(SinCos, MultiplesOfHalfPi) {
  std::vector<double> theta;
  for (int k = -4000; k <= 4000; ++k)
    for (const double nudge : {-1e-9, 0.0, 1e-9}) theta.push_back(k * (M_PI / 2) + nudge);
  EXPECT_LE(largest_difference(theta), kTwoUlp);
}

TEST(SinCos, AnglesPastTheReducedRangeAndNotFinite) {
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(largest_difference({0x1p20 + 0.5, -3e7, 1e300, inf, -inf, std::nan(""), 0.0, -0.0}), 0.0);
}

}  // namespace
}  // namespace klay::kernels
