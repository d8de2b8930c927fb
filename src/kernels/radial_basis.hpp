// The radial functions of edge lengths (src/layers/radial_basis.cpp, docs/layers.md#radial-basis)
// as kernels: one pass over the edges computes the values and, when autograd records the call,
// d/dr for a hand-written backward. The composite path is a chain of ATen operators, each an
// autograd node keeping its inputs: three at::pow (a scalar call per element) for the cutoff,
// five operators with sin for the basis and cos in its backward. Here the cutoff's powers are
// computed once per edge, the basis takes sin and cos together (sin_cos.hpp), and
// RadialBasisEdgeEncoding (basis × cutoff) is one pass forward and one backward.
//
// A backward evaluated with create_graph (training's force loss) differentiates the composite path
// instead, so every order of derivative stays exact. With the kernels switched off
// (KLAY_FUSED_KERNELS=0), or tensors the kernels do not take (off the CPU, not float64 or float32,
// or weights that are not one vector), the composite path runs.
#pragma once
#include <ATen/core/Tensor.h>

#include "kernels/kernel_autograd.hpp"

namespace klay::kernels {

// f(u) = 1 − (p+1)(p+2)/2·u^p + p(p+2)·u^(p+1) − p(p+1)/2·u^(p+2) for u = r·inverse_r_max < 1,
// else 0.
struct PolynomialCutoffParams {
  double inverse_r_max;
  double degree;  // p
};

// prefactor·sin(w·r/r_max)/r for each of the weights w (r = 0 gives NaN).
struct BesselBasisParams {
  double r_max;
  double prefactor;
};

// r [...] → f(r) [...].
at::Tensor polynomial_cutoff(const at::Tensor& r, const PolynomialCutoffParams& cutoff);

// r [...], weights [n] → the basis [..., n].
at::Tensor bessel_basis(const at::Tensor& r, const at::Tensor& weights, const BesselBasisParams& basis);

// r [...], weights [n] → bessel_basis(r, weights, basis)·polynomial_cutoff(r, cutoff)[..., None].
at::Tensor radial_basis_edge_encoding(const at::Tensor& r, const at::Tensor& weights, const BesselBasisParams& basis,
                                      const PolynomialCutoffParams& cutoff);

// Calls of each kernel's forward and backward since the process started (tests prove it ran).
KernelCounters polynomial_cutoff_counters();
KernelCounters bessel_basis_counters();
KernelCounters radial_basis_edge_encoding_counters();

}  // namespace klay::kernels
