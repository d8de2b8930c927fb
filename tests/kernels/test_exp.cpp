// The inline exponential (reduced_exp) against glibc's, in a loop built for each vector width as the
// activations' are: over the arguments the activations meet, the whole reduced range, and near the
// integer multiples of ln 2 where the reduction changes k; and which values it leaves to glibc.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/exp.hpp"
#include "kernels/vector_units.hpp"
#include "versus_glibc.hpp"

namespace klay::kernels {
namespace {

KLAY_VECTOR_WIDTH_CLONES
void reduced_exps(const double* __restrict x, double* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = reduced_exp(x[i]);
}

KLAY_VECTOR_WIDTH_CLONES
void reduced_expfs(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = reduced_exp(x[i]);
}

// max |reduced_exp − glibc| / glibc over the values, taken as T (glibc's exp or expf).
template <typename T>
double largest_relative_difference(const std::vector<double>& values) {
  std::vector<T> x(values.begin(), values.end()), y(values.size());
  if constexpr (std::is_same_v<T, float>) reduced_expfs(x.data(), y.data(), static_cast<int64_t>(x.size()));
  else reduced_exps(x.data(), y.data(), static_cast<int64_t>(x.size()));
  double largest = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const T glibc = std::exp(x[i]);
    if (y[i] == glibc) continue;
    const double difference = std::abs(static_cast<double>(y[i]) - glibc) / std::abs(static_cast<double>(glibc));
    largest = std::isnan(difference) ? std::numeric_limits<double>::infinity() : std::max(largest, difference);
  }
  return largest;
}

TEST(Exp, MatchesGlibcToTheLastPlaces) {
  EXPECT_LE(largest_relative_difference<double>(uniform(-40, 40, 100000, 1)), kTwoUlp);
  EXPECT_LE(largest_relative_difference<double>(uniform(-1e-6, 1e-6, 10000, 2)), kTwoUlp);
  EXPECT_LE(largest_relative_difference<double>(uniform(-708, 708, 100000, 3)), kTwoUlp);
}

// k·ln 2 for |k| ≤ k_max, each also nudged down and up, where the reduction changes k.
std::vector<double> near_multiples_of_ln2(int k_max, double nudge) {
  std::vector<double> x;
  for (int k = -k_max; k <= k_max; ++k)
    for (const double step : {-nudge, 0.0, nudge}) x.push_back(k * M_LN2 + step);
  return x;
}

TEST(Exp, NearMultiplesOfLn2) {
  EXPECT_LE(largest_relative_difference<double>(near_multiples_of_ln2(1021, 1e-12)), kTwoUlp);
}

// Past ±708, and the non-finite, are the loops' to hand to glibc.
TEST(Exp, LeavesValuesPastTheReducedRangeToGlibc) {
  const double inf = std::numeric_limits<double>::infinity();
  for (const double x : {708.5, 709.7, 1e300, -708.5, -745.0, -1e300, inf, -inf, std::nan("")})
    EXPECT_TRUE(outside_reduced_exp(x)) << x;
  for (const double x : {708.0, -708.0, 0.0, -0.0, 1e-300, 35.5}) EXPECT_FALSE(outside_reduced_exp(x)) << x;
}

// Two float ulps: the float activations' exponential.
constexpr double kTwoFloatUlp = 0x1p-22;

TEST(Exp, FloatMatchesGlibcToTheLastPlaces) {
  EXPECT_LE(largest_relative_difference<float>(uniform(-40, 40, 100000, 4)), kTwoFloatUlp);
  EXPECT_LE(largest_relative_difference<float>(uniform(-1e-6, 1e-6, 10000, 5)), kTwoFloatUlp);
  EXPECT_LE(largest_relative_difference<float>(uniform(-87, 87, 100000, 6)), kTwoFloatUlp);
  EXPECT_LE(largest_relative_difference<float>(near_multiples_of_ln2(125, 1e-5)), kTwoFloatUlp);
}

TEST(Exp, FloatLeavesValuesPastTheReducedRangeToGlibc) {
  const float inf = std::numeric_limits<float>::infinity();
  for (const float x : {87.5f, 88.7f, 1e30f, -87.5f, -103.0f, inf, -inf, std::nanf("")})
    EXPECT_TRUE(outside_reduced_exp(x)) << x;
  for (const float x : {87.0f, -87.0f, 0.0f, -0.0f, 1e-30f, 35.5f}) EXPECT_FALSE(outside_reduced_exp(x)) << x;
}

}  // namespace
}  // namespace klay::kernels
