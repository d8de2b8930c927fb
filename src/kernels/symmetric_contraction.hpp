// MACE's symmetric contraction as a sparse, fused kernel. Every step of the nested contraction is
// linear in its element weights and in the step before, so the whole chain b_K … b_1 of one
// output irrep is one polynomial in the features x: Σ_ν Σ_p θ_ν[p] Σ U_ν[a, i_1…i_ν, p] x_i1⋯x_iν.
// The kernel sums the entries of U that multiply the same monomial once (U is about 1 % non-zero
// at correlation 3, lmax 2, and symmetrising halves that again), evaluates the monomials of each
// row, and visits only the non-zero coefficients; nothing of the step-by-step form's
// intermediates (b_ν [R, A_ν] and their gradients g ⊗ x) goes to memory. The hand-written
// backward recomputes a row's monomials and goes back through them. Rows run kLanes at a time in
// vector lanes (baseline and AVX2+FMA entry points, kernels/vector_units.hpp).
//
// A backward evaluated with create_graph (training's force loss) differentiates the composite
// chain instead, so every order of derivative stays exact; with the fused kernels switched off
// (KLAY_FUSED_KERNELS=0) the composite chain runs.
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "kernels/kernel_autograd.hpp"

namespace klay::kernels {

// Same signature and result as e3nn::composite_contraction_chain (an e3nn::ContractionChain):
// x [R, L], thetas θ_K … θ_1 ([R, P_ν]), us U_K … U_1 (read as [A_ν, L, P_ν], A_ν = A_{ν-1}·L)
// → b_1 [R, A_1].
at::Tensor sparse_contraction_chain(const at::Tensor& x, const std::vector<at::Tensor>& thetas,
                                    const std::vector<at::Tensor>& us);

// Calls of the kernel's forward and backward since the process started (tests prove it ran).
KernelCounters contraction_counters();

}  // namespace klay::kernels
