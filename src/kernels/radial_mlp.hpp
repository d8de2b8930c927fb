// The radial MLP (e3nn FullyConnectedNet) as a kernel: per layer one BLAS matmul with the layer's
// scale (1/√h_k, and the normalize2mom constant of the activation before it) folded into the
// weights once per call, and one elementwise pass that applies the activation and keeps its
// derivative for the backward, which is written by hand (matmuls and one multiply per layer).
// The composite path is about a dozen ATen operators per layer with an autograd graph over them.
//
// A backward evaluated with create_graph (training's force loss) differentiates the composite
// path instead, so every order of derivative stays exact; with the fused kernels switched off
// (KLAY_FUSED_KERNELS=0) the composite path runs.
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "e3nn/activations.hpp"
#include "kernels/kernel_autograd.hpp"

namespace klay::kernels {

// Same result as fc.forward(x) (columns undefined) or fc.forward(x, columns): x [..., h0] →
// [..., hL] or [..., columns.numel()].
at::Tensor radial_mlp(const e3nn::FullyConnectedNetImpl& fc, const at::Tensor& x, const at::Tensor& columns = {});

// The pieces a kernel that evaluates the net inside its own loops (radial_convolution_scatter)
// shares with this one. The factor folded into layer k's weight: 1/√h_k, times the normalize2mom
// constant κ of the activation before it (k ≥ 1).
std::vector<double> radial_layer_scales(const std::vector<at::Tensor>& weights, double kappa);
// weight·scale [in, out], or its transpose [out, in], contiguous, multiplied in the weight's type as
// ATen multiplies a tensor by a double.
at::Tensor radial_scaled_weight(const at::Tensor& weight, double scale, bool transposed);
// Whether the layers run block by block on rows of x: every product on row_matmul's register tiles
// (rows_times gives row_matmul's numbers there) and the operands of x's type.
bool radial_layers_blockwise(const at::Tensor& x, const std::vector<at::Tensor>& matrices);

// Calls of the kernel's forward and backward since the process started (tests prove it ran).
KernelCounters radial_mlp_counters();

}  // namespace klay::kernels
