// The edge vectors pos[edge_index[1]] − pos[edge_index[0]] + shift (KLay's "+ shift" convention,
// SphericalHarmonicEdgeAttrs) as one kernel: one gather pass forward, one scatter pass backward,
// where the composite path runs two index_selects, a sub and an add forward and, backward, two
// zero-filled index_adds, a neg, their sum and the shift's reduction, each an autograd node.
//
// A backward evaluated with create_graph (training's force loss) differentiates the composite path
// instead; the kernels switched off (KLAY_FUSED_KERNELS=0), or a shift that is neither [E, 3] nor
// one row broadcast to it, run the composite path.
#pragma once
#include <ATen/core/Tensor.h>

#include "kernels/kernel_autograd.hpp"

namespace klay::kernels {

// pos [N, 3], edge_index int64 [2, E] with nodes in 0..N−1, shift [E, 3] or broadcastable to it
// → [E, 3]. A node outside 0..N−1 is an error.
at::Tensor edge_vectors(const at::Tensor& pos, const at::Tensor& edge_index, const at::Tensor& shift);

// Calls of the kernel's forward and backward since the process started.
KernelCounters edge_vectors_counters();

}  // namespace klay::kernels
