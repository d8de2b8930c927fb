// e3nn's o3.Linear as a kernel: the composite forward (e3nn/linear.cpp) runs about a dozen ATen
// operators per irrep group (split, reshape, cat, transpose, contiguous, index_select, mul,
// matmul, split, transpose, reshape, cat) and as many autograd nodes, each way. Here each group is
// one gather of its input entries into a component-major matrix [n·d, Σ mul_in], one BLAS product
// with the group's scaled weight block [Σ mul_in, Σ mul_out] and one scatter into the output's
// layout (scalar groups whose entries lie side by side need neither: the product reads and writes
// the features in place), with a hand-written backward (features and, when wanted, the weight).
//
// A backward evaluated with create_graph (training's force loss) differentiates the composite
// forward instead, so every order of derivative stays exact; with the fused kernels switched off
// (KLAY_FUSED_KERNELS=0) the composite forward runs.
#pragma once
#include <vector>

#include <ATen/core/Tensor.h>

#include "e3nn/linear.hpp"
#include "kernels/kernel_autograd.hpp"

namespace klay::kernels {

// linear.forward(features) and linear.forward(features, only), through the kernel where it applies
// (CPU, float32 or float64, features and weight of one type).
at::Tensor linear(const e3nn::LinearImpl& linear, const at::Tensor& features);
at::Tensor linear(const e3nn::LinearImpl& linear, const at::Tensor& features, const std::vector<e3nn::Irrep>& only);
// linear.forward(features, only) in the output columns `columns` (any order) and zero in the others:
// each multiplicity channel holding one of them is computed whole, from the same products, and
// no other. What a reader of some channels of an irrep needs (a gate's activated scalars, without
// the gates beside them in the same entry), in a fraction of the multiply-adds.
at::Tensor linear(const e3nn::LinearImpl& linear, const at::Tensor& features, const std::vector<e3nn::Irrep>& only,
                  const std::vector<int64_t>& columns);

// Calls of the kernel's forward and backward since the process started (tests prove the kernel ran).
KernelCounters linear_counters();

}  // namespace klay::kernels
