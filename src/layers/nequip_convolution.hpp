// The NequIP interaction block (docs/layers.md#interaction-block), shared by the InteractionBlock layer, the
// `conv` of ConvNetLayer and AttentionInteractionBlock (which multiplies each message by a radial
// attention weight).
#pragma once
#include <optional>
#include <string>

#include "e3nn/activations.hpp"
#include "e3nn/irreps.hpp"
#include "e3nn/linear.hpp"
#include "e3nn/tensor_product.hpp"
#include "layers/equivariant_layer.hpp"

namespace klay {

struct InteractionBlockSettings {
  e3nn::Irreps irreps_in, irreps_out, node_attr_irreps, edge_attr_irreps;
  int64_t num_edge_embeddings = 0;  // edge_embedding_irreps.num_irreps (all scalars)
  int64_t invariant_layers = 1;
  int64_t invariant_neurons = 8;
  std::optional<double> avg_num_neighbors;  // messages summed per node are divided by its √
  bool use_sc = true;
  std::string radial_activation = "silu";  // of the radial MLP `fc`: silu or ssp

  // The InteractionBlock config keys (irreps as e3nn strings or block lists); the defaults, which
  // differ between InteractionBlock and AttentionInteractionBlock, are their declarations'.
  static InteractionBlockSettings from_config(const Config& config);
};

// Ports:  x [N, node_attr] (node attributes), h [N, irreps_in], edge_length_embeddings [E, n_emb],
//         edge_sh [E, edge_attr], edge_index [2, E] → h [N, irreps_out].
// State:  linear_1.{weight,bias,output_mask}   Linear(irreps_in → irreps_in)
//         fc.layer{0…invariant_layers}.weight   FCNet([n_emb, neurons × layers, tp.weight_numel])
//         tp.{weight [0],output_mask,_compiled_main_left_right._w3j_*}   uvu, per-edge weights
//         linear_2.{weight,bias,output_mask}   Linear(simplify(mid) → irreps_out)
//         sc.{weight,output_mask,…}            FCTP(irreps_in, node_attr → irreps_out), if use_sc
// NequIP convention: messages flow from edge_index[1] to edge_index[0].
class InteractionBlock : public EquivariantLayer {
 public:
  InteractionBlock(const Config& config, InteractionBlockSettings settings,
                   const std::string& type = "InteractionBlock");

  // What forward computes when its readers read only the outputs of some irreps (the scalars a
  // gate activates): the message's paths into those irreps, their radial weights, linear_2's maps
  // of those irreps and the self-connection's paths into them.
  struct Restriction {
    std::vector<e3nn::Irrep> irreps;
    e3nn::RestrictedTensorProduct tp, sc;
    // The output columns read, of those irreps' (a gate's scalars, not its gates); empty: all.
    std::vector<int64_t> columns;
  };
  std::optional<Restriction> restriction_to(const std::vector<e3nn::Irrep>& irreps) const;

  // edge_scale: [E, 1] factor of each message (AttentionInteractionBlock), or undefined.
  // With `only`, the result is exact in only->columns (all the columns of only->irreps when that
  // is empty) and arbitrary elsewhere.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& h, const at::Tensor& edge_length_embeddings,
                     const at::Tensor& edge_sh, const at::Tensor& edge_index, const at::Tensor& edge_scale = {},
                     const Restriction* only = nullptr) const;

  c10::IValue call(const CallArgs& call) override;

  // The five InteractionBlock ports of a call, checked against the irreps, in port order.
  std::vector<at::Tensor> common_inputs(const CallArgs& call) const;

 private:
  InteractionBlockSettings settings_;
  e3nn::Linear linear_1_{nullptr};
  e3nn::FullyConnectedNet fc_{nullptr};
  e3nn::TensorProduct tp_{nullptr};
  e3nn::Linear linear_2_{nullptr};
  e3nn::TensorProduct sc_{nullptr};
};

}  // namespace klay
