// The self-connection of the NequIP and MACE convolutions as a kernel: the FullyConnectedTensorProduct
// of the node features with node attributes that are scalars (one-hot elements). With a scalar second
// operand the Wigner-3j block of l ⊗ 0 → l is c·identity, so each output irrep is
//   out[n, w, k] = Σ_paths c_p Σ_{u,v} W_p[u, v, w] x[n, u, k] a[n, v],
// one matrix product over z[(n, k), (p, u, v)] = x[n, u, k]·a[n, v] per output irrep, where the
// composite path runs several ATen operators and autograd nodes per path; the backward (features,
// attributes, shared weights) is hand-written too.
//
// A backward evaluated with create_graph (training's force loss) differentiates the product's own
// forward instead, so every order of derivative stays exact; other products, or the kernels switched
// off (KLAY_FUSED_KERNELS=0), run the module's forward.
#pragma once
#include <ATen/core/Tensor.h>

#include "e3nn/tensor_product.hpp"
#include "kernels/kernel_autograd.hpp"

namespace klay::kernels {

// The same as tp.forward(x, attrs, weight): x [N, irreps_in1.dim()], attrs [N, irreps_in2.dim()];
// weight only for a product with external weights (a restricted one), shared: [weight_numel].
at::Tensor self_connection(const e3nn::TensorProductImpl& tp, const at::Tensor& x, const at::Tensor& attrs,
                           const at::Tensor& weight = {});

// sum + self_connection(tp, x, attrs, weight), where the kernel runs written into sum's storage
// (autograd records an in-place operation, so the caller must not read `sum` afterwards; `sum`
// must not be saved by any autograd node, else the backward reports it modified). A message plus
// its self-connection thus needs no zero-filled product and no separate addition.
at::Tensor add_self_connection(at::Tensor sum, const e3nn::TensorProductImpl& tp, const at::Tensor& x,
                               const at::Tensor& attrs, const at::Tensor& weight = {});

// True when self_connection runs the kernel for this product: its second operand is scalars and
// every instruction is uvw with weights.
bool self_connection_supports(const e3nn::TensorProductImpl& tp);

// Calls of the kernel's forward and backward since the process started.
KernelCounters self_connection_counters();

}  // namespace klay::kernels
