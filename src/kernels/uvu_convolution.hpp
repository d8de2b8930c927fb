// The message-passing convolution as one fused kernel: gather each edge's sender features, take
// the per-edge "uvu" tensor product with the edge attributes (spherical harmonics) using only the
// non-zero Wigner-3j entries, weight it per edge, and sum it into the receiver — one pass over the
// edges grouped by receiver (no atomics, no per-edge temporaries), with a hand-written backward
// (node features, edge attributes, per-edge weights), also by receiver, each thread summing the
// node-feature gradient into an accumulator of its own.
//
// It computes exactly what the composite ATen path computes,
//   out = scatter_sum(tp(node_features[sender], edge_attrs, weight), receiver, num_receivers),
// for the tensor products of convolution_tensor_product() (NequIP's InteractionBlock, ConvNetLayer,
// AttentionInteractionBlock, MACE's conv_tp): every instruction uvu, weighted, with edge irreps of
// multiplicity 1. Anything else (or kernels switched off) takes the composite path.
//
// Training needs second derivatives (force loss → weights): a backward evaluated with create_graph
// recomputes the composite path and differentiates it, so every order of derivative stays exact.
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

#include "e3nn/activations.hpp"
#include "e3nn/tensor_product.hpp"
#include "kernels/kernel_autograd.hpp"

namespace klay::kernels {

// node_features [N_s, irreps_in1.dim()], edge_attrs [E, irreps_in2.dim()], weight [E, weight_numel],
// sender/receiver int64 [E] (rows of node_features / of the result) → [num_receivers, irreps_out.dim()],
// times `scale` (the layers' normalisation by the average number of neighbours, folded into the
// Wigner-3j entries instead of a pass over the result).
at::Tensor convolution_scatter(const e3nn::TensorProductImpl& tp, const at::Tensor& node_features,
                               const at::Tensor& edge_attrs, const at::Tensor& weight, const at::Tensor& sender,
                               const at::Tensor& receiver, int64_t num_receivers, double scale = 1.0);

// The same from ATen operators: the fallback, and the reference the kernel is tested against.
at::Tensor convolution_scatter_composite(const e3nn::TensorProductImpl& tp, const at::Tensor& node_features,
                                         const at::Tensor& edge_attrs, const at::Tensor& weight,
                                         const at::Tensor& sender, const at::Tensor& receiver,
                                         int64_t num_receivers, double scale = 1.0);

// convolution_scatter with the per-edge weights radial_mlp(fc, edge_embeddings, weight_columns)
// (times edge_scale [E, 1] where it is defined), the net evaluated inside the kernel a block
// of edges at a time: the weights and their gradient never go through memory, and MD's backward
// takes the embeddings' gradient through the net block by block. The same numbers as the two
// kernels in turn. Gradients of the net's weights (training) and second derivatives differentiate
// the composite path; where the kernels do not take the net or the product, the two run in turn.
at::Tensor radial_convolution_scatter(const e3nn::TensorProductImpl& tp, const e3nn::FullyConnectedNetImpl& fc,
                                      const at::Tensor& edge_embeddings, const at::Tensor& weight_columns,
                                      const at::Tensor& edge_scale, const at::Tensor& node_features,
                                      const at::Tensor& edge_attrs, const at::Tensor& sender,
                                      const at::Tensor& receiver, int64_t num_receivers, double scale = 1.0);

// True when convolution_scatter runs the fused kernel for this tensor product.
bool fused_kernel_supports(const e3nn::TensorProductImpl& tp);

// Calls of the fused forward and backward kernels since the process started: tests use them to
// prove that MD goes through the kernels.
KernelCounters kernel_counters();
// The same for radial_convolution_scatter's kernel (counted there only).
KernelCounters radial_convolution_counters();

// Floating-point operations the fused kernels perform over `num_edges` edges (a multiply-add counts
// two), for the benchmarks' GFLOP/s: the forward, and the backward with all three gradients.
struct ConvolutionFlops {
  int64_t forward = 0, backward = 0;
};
ConvolutionFlops convolution_flops(const e3nn::TensorProductImpl& tp, int64_t num_edges);

}  // namespace klay::kernels
