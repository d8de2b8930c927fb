// MACE's symmetric contraction step as a sparse kernel: the U matrices are almost all zeros (about
// 1 % of the entries are non-zero at correlation 3, lmax 2; 3-12 % at correlation 2), so the dense
// matmul of e3nn::composite_contraction_step multiplies mostly zeros. The kernel visits only the
// non-zero entries, with a hand-written backward (features, element weights, the previous step).
//
// A backward evaluated with create_graph (training's force loss) differentiates the composite step
// instead, so every order of derivative stays exact; with the fused kernels switched off
// (KLAY_FUSED_KERNELS=0) the composite step runs.
#pragma once
#include <ATen/core/Tensor.h>

#include "kernels/kernel_autograd.hpp"

namespace klay::kernels {

// Same signature and result as e3nn::composite_contraction_step (an e3nn::ContractionStep):
// x [R, L], theta [R, P], b [R, A·L] or undefined, u the U matrix read as [A, L, P] → [R, A].
at::Tensor sparse_contraction_step(const at::Tensor& x, const at::Tensor& theta, const at::Tensor& b,
                                   const at::Tensor& u);

// Calls of the sparse forward and backward since the process started (tests prove the kernel ran).
KernelCounters contraction_counters();

}  // namespace klay::kernels
