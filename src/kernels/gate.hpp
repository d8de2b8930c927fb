// e3nn's Gate as one kernel: one pass over the rows reads the gate input and writes the output
// (the scalars activated, each gated irrep times its activated gate), with a hand-written
// backward, where the module runs three index_selects, two activations, an elementwise tensor
// product and a cat, each an autograd node.
//
// A backward evaluated with create_graph (training's force loss) differentiates the module's own
// forward instead, so every order of derivative stays exact; a Gate whose activations the kernel
// does not know, or the kernels switched off (KLAY_FUSED_KERNELS=0), runs the module's forward.
#pragma once
#include <ATen/core/Tensor.h>

#include "e3nn/gate.hpp"
#include "kernels/kernel_autograd.hpp"

namespace klay::kernels {

// The same as gate.forward(features): features [..., irreps_in().dim()] → [..., irreps_out().dim()].
at::Tensor gate(const e3nn::GateImpl& gate, const at::Tensor& features);

// The same as gate.forward_scalars(features): the activated scalars, the gated columns zero.
at::Tensor gate_scalars(const e3nn::GateImpl& gate, const at::Tensor& features);

// True when gate() and gate_scalars() run the kernel for this Gate.
bool gate_kernel_supports(const e3nn::GateImpl& gate);

// Calls of the kernel's forward and backward since the process started.
KernelCounters gate_counters();

}  // namespace klay::kernels
