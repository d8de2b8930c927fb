// e^x of many values in one loop that the compiler vectorizes, built for the widest vector
// instructions the CPU has (chosen when the library loads), as sin_cos.hpp does for sin and cos:
// the activations of the radial networks and gates take one exponential per element, which glibc
// computes in one scalar call each and ATen's at::sigmoid in an operator of its own.
//
// Within about one unit in the last place of glibc for |x| ≤ 708: x = k·ln 2 + r with ln 2 in two
// parts (Cody-Waite, exact for that range), e^r for |r| ≤ ln 2 / 2 its Taylor polynomial cut where
// the next term is below 1e-17, and 2^k put into the exponent bits. Larger or non-finite values
// (and the subnormal results below e^-708) take std::exp.
#pragma once
#include <cstdint>

namespace klay::kernels {

// y[i] = e^x[i]; y must not overlap x.
void exp_values(const double* x, double* y, int64_t n);

}  // namespace klay::kernels
