// Reproduces e3nn.o3.wigner_3j (e3nn >= 0.5, docs/layers.md#wigner-3j): the real-basis coupling tensor
// W[2l1+1, 2l2+1, 2l3+1], Frobenius norm 1, obtained from the complex Condon–Shortley
// Clebsch–Gordan coefficients (Racah's formula in long double) by e3nn's real-to-complex change of
// basis Q_l. No module state; results are cached per (l1, l2, l3).
#pragma once
#include <ATen/core/Tensor.h>

namespace klay::e3nn {

// float64 CPU tensor [2l1+1, 2l2+1, 2l3+1]; a fresh copy of the cached value (callers may modify it).
// Throws klay::Error unless |l1-l2| <= l3 <= l1+l2.
at::Tensor wigner_3j(int l1, int l2, int l3);

}  // namespace klay::e3nn
