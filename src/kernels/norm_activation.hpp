// e3nn's NormActivation (ConvNetLayer's "norm" nonlinearity) as one kernel: per copy u of an irrep,
// out[u, m] = x[u, m]·f(r_u)/r_u with r_u = √max(Σ_m x[u, m]², ε²), in one pass over the rows with a
// hand-written backward, where the module runs two tensor products (the squared norms and the
// scalar multiplier), a where, a sqrt, the activation and a division, each an autograd node.
//
// A backward evaluated with create_graph (training's force loss) differentiates the module's own
// forward instead; an activation the kernel does not know, or the kernels switched off
// (KLAY_FUSED_KERNELS=0), runs the module's forward.
#pragma once
#include <ATen/core/Tensor.h>

#include "e3nn/gate.hpp"
#include "kernels/kernel_autograd.hpp"

namespace klay::kernels {

// The same as activation.forward(features): features [..., irreps.dim()] → the same shape.
at::Tensor norm_activation(const e3nn::NormActivationImpl& activation, const at::Tensor& features);

// True when norm_activation runs the kernel for this module.
bool norm_activation_kernel_supports(const e3nn::NormActivationImpl& activation);

// Calls of the kernel's forward and backward since the process started.
KernelCounters norm_activation_counters();

}  // namespace klay::kernels
