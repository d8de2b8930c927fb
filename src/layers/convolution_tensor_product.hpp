// The per-edge "uvu" tensor product of the message-passing convolutions: NequIP's
// InteractionBlock and MACE's conv_tp (tp_out_irreps_with_instructions) build it with the same
// recipe (docs/layers.md#convolution-tensor-product).
#pragma once
#include "e3nn/irreps.hpp"
#include "e3nn/tensor_product.hpp"

namespace klay {

// One uvu path per (node entry i, edge entry j, ir_out ∈ ir_i ⊗ ir_j that `target` contains), in
// that creation order, each writing its own output entry (mul_i x ir_out); the output entries are
// then sorted by (l, p) and the instructions re-pointed. The instruction order fixes the weight
// layout, the sorted list is the product's irreps_out (callers feed its simplify() to a Linear).
// External per-edge weights (shared_weights=False): weight_numel = Σ over paths of mul_i.
e3nn::TensorProduct convolution_tensor_product(const e3nn::Irreps& node_irreps, const e3nn::Irreps& edge_irreps,
                                               const e3nn::Irreps& target);

}  // namespace klay
