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

#include <cstdint>
#include <functional>
#include <vector>

#include "e3nn/activations.hpp"
#include "kernels/kernel_autograd.hpp"
#include "kernels/scalar_activation.hpp"

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

// The net's layers on one block of rows, on the calling thread, as this kernel computes each row:
// what the radial MLP kernel runs per block of rows, and what a kernel evaluating the net inside
// its own loops (radial_convolution_scatter) runs per block of edges. scaled[k] is layer k's
// weight times its scale, [widths[k], widths[k+1]], transposed[k] its transpose (the backward
// only), both contiguous; the activation is unscaled (its normalize2mom constant is in the next
// layer's weight).
template <typename T>
struct RadialRows {
  std::vector<const T*> scaled, transposed;
  std::vector<int64_t> widths;  // h_0 … h_L
  ScaledActivation activation;

  // x [rows, h_0] (leading dimension ldx) → out [rows, h_L], contiguous. Hidden layer k's
  // activations go to hidden(k) and, where derivative(k) is not null, its f'(z) there (both
  // [rows, h_{k+1}], contiguous).
  void forward(const T* x, int64_t ldx, int64_t rows, const std::function<T*(size_t)>& hidden,
               const std::function<T*(size_t)>& derivative, T* out) const;
  // The input's gradient grad_x [rows, h_0] from the output's g [rows, h_L] (leading dimension
  // ldg): derivative(k) is the f'(z) of layer k's input and the gradient of that input goes to
  // gradient(k) on the way (k ≥ 1; [rows, h_k], contiguous).
  void backward(const T* g, int64_t ldg, int64_t rows, const std::function<const T*(size_t)>& derivative,
                const std::function<T*(size_t)>& gradient, T* grad_x) const;
};

// The RadialRows of scaled weights [in, out] and their transposes (empty where no backward runs),
// contiguous tensors of T, with the activation `kind`.
template <typename T>
RadialRows<T> radial_rows(const std::vector<at::Tensor>& scaled, const std::vector<at::Tensor>& transposed,
                          ScaledActivation::Kind kind);

// Calls of the kernel's forward and backward since the process started (tests prove it ran).
KernelCounters radial_mlp_counters();

}  // namespace klay::kernels
