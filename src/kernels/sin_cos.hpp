// sin θ and cos θ of many angles in one loop that the compiler vectorizes, built for the widest
// vector instructions the CPU has (chosen when the library loads). glibc's sin and cos are one
// scalar call per angle (about 15 ns each on the development machine) and ATen's at::sin and
// at::cos an operator each; this computes both in about 1 ns per angle.
//
// Within about one unit in the last place of glibc for |θ| ≤ 2^20: θ is reduced by π/2 in three
// parts (Cody-Waite, exact for that range) and sin and cos of the remainder in [−π/4, π/4] are
// their Taylor polynomials, cut where the next term is below 1e-19. Larger or non-finite angles
// take std::sin and std::cos.
#pragma once
#include <cstdint>

namespace klay::kernels {

void sin_cos(const double* theta, double* sin_theta, double* cos_theta, int64_t n);

}  // namespace klay::kernels
