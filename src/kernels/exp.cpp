// Vectorized exponential (see the header for the method and its accuracy).
#include "kernels/exp.hpp"

#include <cmath>
#include <cstdint>

#include "kernels/vector_units.hpp"

namespace klay::kernels {
namespace {

// True when some value lies outside the range reduced here (or is not finite).
KLAY_VECTOR_WIDTH_CLONES
bool reduced_exp_values(const double* __restrict x, double* __restrict y, int64_t n) {
  int64_t outside = 0;
  for (int64_t i = 0; i < n; ++i) {
    outside |= static_cast<int64_t>(outside_reduced_exp(x[i]));
    y[i] = reduced_exp(x[i]);
  }
  return outside != 0;
}

}  // namespace

void exp_values(const double* x, double* y, int64_t n) {
  if (!reduced_exp_values(x, y, n)) return;
  for (int64_t i = 0; i < n; ++i)
    if (outside_reduced_exp(x[i])) y[i] = std::exp(x[i]);
}

}  // namespace klay::kernels
