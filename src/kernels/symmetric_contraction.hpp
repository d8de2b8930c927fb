// MACE's symmetric contraction as a sparse, fused kernel: the U matrices are almost all zeros
// (about 1 % of the entries are non-zero at correlation 3, lmax 2; 3-12 % at correlation 2), so
// the dense matmul of e3nn::composite_contraction_step multiplies mostly zeros. The kernel visits
// only the non-zero entries and runs the whole chain of steps of one row (b_K … b_1) in small
// per-thread buffers: the intermediates b_ν [R, A_ν·…] and their gradients g_ν ⊗ x, which the
// step-by-step form writes to memory and reads back, never leave the cache. The hand-written
// backward recomputes a row's chain instead of storing it.
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
