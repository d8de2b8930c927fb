// What the tests of the vectorized elementary functions (sin_cos, reduced_exp) share: arguments
// drawn uniformly, and their bar against glibc.
#pragma once
#include <random>
#include <vector>

namespace klay::kernels {

inline std::vector<double> uniform(double low, double high, int n, unsigned seed) {
  std::mt19937_64 generator(seed);
  std::uniform_real_distribution<double> distribution(low, high);
  std::vector<double> values(n);
  for (double& v : values) v = distribution(generator);
  return values;
}

// Two units in the last place: 2·2^-52 relative.
constexpr double kTwoUlp = 0x1p-51;

}  // namespace klay::kernels
