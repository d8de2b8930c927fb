// The vectorized exponential against glibc's: over the arguments the activations meet, the whole
// reduced range, near the integers multiples of ln 2 where the reduction changes k, and the values
// past the range (overflow, subnormal results, infinities, NaN) that glibc evaluates.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/exp.hpp"
#include "versus_glibc.hpp"

namespace klay::kernels {
namespace {

// max |exp_values − glibc| / glibc over the values; NaN counts as a difference unless both are NaN.
double largest_relative_difference(const std::vector<double>& x) {
  std::vector<double> y(x.size());
  exp_values(x.data(), y.data(), static_cast<int64_t>(x.size()));
  double largest = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double glibc = std::exp(x[i]);
    if (std::isnan(y[i]) && std::isnan(glibc)) continue;
    if (y[i] == glibc) continue;  // also the infinities and zeros
    const double difference = std::abs(y[i] - glibc) / std::abs(glibc);
    largest = std::isnan(difference) ? std::numeric_limits<double>::infinity() : std::max(largest, difference);
  }
  return largest;
}

TEST(Exp, MatchesGlibcToTheLastPlaces) {
  EXPECT_LE(largest_relative_difference(uniform(-40, 40, 100000, 1)), kTwoUlp);
  EXPECT_LE(largest_relative_difference(uniform(-1e-6, 1e-6, 10000, 2)), kTwoUlp);
  EXPECT_LE(largest_relative_difference(uniform(-708, 708, 100000, 3)), kTwoUlp);
}

TEST(Exp, NearMultiplesOfLn2) {
  std::vector<double> x;
  for (int k = -1021; k <= 1021; ++k)
    for (const double nudge : {-1e-12, 0.0, 1e-12}) x.push_back(k * M_LN2 + nudge);
  EXPECT_LE(largest_relative_difference(x), kTwoUlp);
}

// Past ±708 glibc's own results: overflow to infinity, subnormals, zero, and the non-finite.
TEST(Exp, ValuesPastTheReducedRangeAndNotFinite) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> x{708.5, 709.7, 710.0, 1e300, -708.5, -720.0, -745.0, -746.0, -1e300,
                              inf,   -inf,  std::nan(""), 0.0, -0.0};
  std::vector<double> y(x.size());
  exp_values(x.data(), y.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) EXPECT_TRUE(std::isnan(y[i]));
    else EXPECT_EQ(y[i], std::exp(x[i])) << x[i];
  }
}

}  // namespace
}  // namespace klay::kernels
