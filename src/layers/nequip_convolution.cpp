// InteractionBlock and ConvNetLayer: the NequIP convolution (docs/layers.md#interaction-block,
// #convnet-layer).
#include "layers/nequip_convolution.hpp"

#include <ATen/ATen.h>

#include <cmath>

#include "e3nn/gate.hpp"
#include "kernels/gate.hpp"
#include "kernels/linear.hpp"
#include "kernels/norm_activation.hpp"
#include "kernels/self_connection.hpp"
#include "kernels/uvu_convolution.hpp"
#include "layers/convolution_tensor_product.hpp"
#include "layers/irreps_config.hpp"

namespace klay {

using e3nn::Irrep;
using e3nn::Irreps;
using e3nn::MulIrrep;

namespace {

// Python looks the activation up in a dict of these names; anything else is a KeyError there.
std::string activation_name(const Config& config, const std::string& key, const std::string& parity_key,
                            const std::vector<std::string>& allowed) {
  const Config table = config.get_map(key);
  const std::string name = table.get_string(parity_key);
  for (const std::string& a : allowed)
    if (a == name) return name;
  std::string list;
  for (const std::string& a : allowed) list += (list.empty() ? "" : ", ") + a;
  table.fail(parity_key, "unknown activation '" + name + "' (KLay knows " + list + ")");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// InteractionBlock
//
// Config: irreps_in, irreps_out, node_attr_irreps, edge_attr_irreps, edge_embedding_irreps (e3nn
// strings or block lists), invariant_layers (=1), invariant_neurons (=8), avg_num_neighbors
// (=null: no division), use_sc (=true), nonlinearity_scalars ({e: silu}; silu or ssp).
// Python cannot build it from YAML (its __init__ needs Irreps objects,
// docs/layers.md#quirk-interaction-block-yaml); this is the intended math, and it matches the
// Python module built with converted irreps (layer_InteractionBlock_0).

InteractionBlockSettings InteractionBlockSettings::from_config(const Config& config) {
  InteractionBlockSettings s;
  s.irreps_in = irreps_from_config(config, "irreps_in");
  s.irreps_out = irreps_from_config(config, "irreps_out");
  s.node_attr_irreps = irreps_from_config(config, "node_attr_irreps");
  s.edge_attr_irreps = irreps_from_config(config, "edge_attr_irreps");
  const Irreps embedding = irreps_from_config(config, "edge_embedding_irreps");
  for (const MulIrrep& entry : embedding)
    if (entry.ir.l != 0)
      config.fail("edge_embedding_irreps", "the radial edge embedding must be scalars (l = 0)");
  s.num_edge_embeddings = embedding.num_irreps();
  s.invariant_layers = config.get_int_at_least("invariant_layers", 0);
  s.invariant_neurons = config.get_int_at_least("invariant_neurons", 1);
  if (config.has("avg_num_neighbors")) {
    s.avg_num_neighbors = config.get_double("avg_num_neighbors");
    if (!(*s.avg_num_neighbors > 0)) config.fail("avg_num_neighbors", "must be positive");
  }
  s.use_sc = config.get_bool("use_sc");
  s.radial_activation =
      activation_name(config, "nonlinearity_scalars", "e", {"ssp", "silu"});
  return s;
}

InteractionBlock::InteractionBlock(const Config& config, InteractionBlockSettings settings,
                                   const std::string& type)
    : EquivariantLayer(type, config), settings_(std::move(settings)) {
  const InteractionBlockSettings& s = settings_;
  linear_1_ = register_module("linear_1", e3nn::Linear(s.irreps_in, s.irreps_in));

  e3nn::TensorProduct tp = convolution_tensor_product(s.irreps_in, s.edge_attr_irreps, s.irreps_out);

  std::vector<int64_t> sizes{s.num_edge_embeddings};
  sizes.insert(sizes.end(), s.invariant_layers, s.invariant_neurons);
  sizes.push_back(tp->weight_numel());
  fc_ = register_module("fc", e3nn::FullyConnectedNet(sizes, s.radial_activation));
  tp_ = register_module("tp", tp);
  linear_2_ = register_module("linear_2", e3nn::Linear(tp->irreps_out().simplify(), s.irreps_out));
  if (s.use_sc)
    sc_ = register_module(
        "sc", e3nn::fully_connected_tensor_product(s.irreps_in, s.node_attr_irreps, s.irreps_out));
  declare_input(0, s.node_attr_irreps);
  declare_input(1, s.irreps_in);
  declare_input(3, s.edge_attr_irreps);
  declare_output(s.irreps_out);
}

std::optional<InteractionBlock::Restriction> InteractionBlock::restriction_to(
    const std::vector<Irrep>& irreps) const {
  // linear_2 maps each irrep to itself, so its outputs of `irreps` read only the paths into them.
  // The message's outputs compact (linear_2 reads just those entries); the self-connection's in
  // the block's whole layout, which it is added to.
  e3nn::RestrictedTensorProduct tp = e3nn::restrict_outputs(*tp_, irreps, /*compact=*/true);
  if (!tp.tp) return std::nullopt;
  return Restriction{irreps, std::move(tp),
                     sc_ ? e3nn::restrict_outputs(*sc_, irreps, /*compact=*/false) : e3nn::RestrictedTensorProduct{},
                     /*columns=*/{}};
}

at::Tensor InteractionBlock::forward(const at::Tensor& x, const at::Tensor& h,
                                     const at::Tensor& edge_length_embeddings, const at::Tensor& edge_sh,
                                     const at::Tensor& edge_index, const at::Tensor& edge_scale,
                                     const Restriction* only) const {
  // The message is linear in its weights, so edge_scale scales the weights (in the kernel). Python:
  // h.div(avg_num_neighbors**0.5) after the sum, here folded into the convolution.
  const double scale = settings_.avg_num_neighbors ? 1.0 / std::pow(*settings_.avg_num_neighbors, 0.5) : 1.0;
  const at::Tensor aggregated = kernels::radial_convolution_scatter(
      only ? *only->tp.tp : *tp_, *fc_, edge_length_embeddings, only ? only->tp.weight_columns : at::Tensor(),
      edge_scale, kernels::linear(*linear_1_, h), edge_sh, /*sender=*/edge_index[1], /*receiver=*/edge_index[0],
      h.size(0), scale);

  at::Tensor out = !only                  ? kernels::linear(*linear_2_, aggregated)
                   : only->columns.empty() ? kernels::linear(*linear_2_, aggregated, only->irreps)
                                           : kernels::linear(*linear_2_, aggregated, only->irreps, only->columns);
  if (sc_ && !only) out = kernels::add_self_connection(out, *sc_, h, x);
  if (only && only->sc.tp)
    out = kernels::add_self_connection(out, *only->sc.tp, h, x, sc_->weight.index_select(0, only->sc.weight_columns));
  return out;
}

std::vector<at::Tensor> InteractionBlock::common_inputs(const CallArgs& call) const {
  const InteractionBlockSettings& s = settings_;
  std::vector<at::Tensor> in{
      features_input(call, 0, "x"), features_input(call, 1, "h"),
      tensor_input(call, 2, "edge_length_embeddings"), features_input(call, 3, "edge_sh"),
      index_input(call, 4, "edge_index")};
  const int64_t n_nodes = in[1].size(0);
  const at::Tensor& edge_index = in[4];
  if (in[0].size(0) != n_nodes)
    fail("x has " + std::to_string(in[0].size(0)) + " rows but h has " + std::to_string(n_nodes));
  const int64_t n_edges = edge_count(edge_index);
  if (in[2].dim() != 2 || in[2].size(0) != n_edges || in[2].size(1) != s.num_edge_embeddings)
    fail("edge_length_embeddings must be [E=" + std::to_string(n_edges) + ", " +
         std::to_string(s.num_edge_embeddings) + "], got " + c10::str(in[2].sizes()));
  if (in[3].size(0) != n_edges)
    fail("edge_sh has " + std::to_string(in[3].size(0)) + " rows for " + std::to_string(n_edges) + " edges");
  check_edge_nodes(edge_index, n_nodes);
  return in;
}

c10::IValue InteractionBlock::call(const CallArgs& call) {
  const std::vector<at::Tensor> in = common_inputs(call);
  return forward(in[0], in[1], in[2], in[3], in[4]);
}

// ---------------------------------------------------------------------------------------------
// ConvNetLayer = InteractionBlock + equivariant nonlinearity (Gate or NormActivation).
//
// Ports:  as InteractionBlock.
// Config: hidden_irreps_lmax, edge_sh_lmax, conv_feature_size F, input_block, node_attr_block
//         (blocks), avg_neigh (=1), num_radial_basis (=8), parity (=true),
//         radial_network_hidden_dim (=64), radial_network_layers (=2), nonlinearity_type (gate|norm),
//         nonlinearity_scalars ({e: silu, o: tanh}), nonlinearity_gates ({e: silu, o: abs});
//         accepted without effect, as in Python (docs/layers.md#quirk-convnet-ignored-args):
//         convolution_kwargs, resnet.
// State:  conv.* (InteractionBlock), and equivariant_nonlin.mul.{weight,output_mask} (gate) or
//         equivariant_nonlin.{norm.tp,scalar_multiplier}.{weight,output_mask} (norm).
// Irreps (Python's derivation): hidden = F×(l, p) for p in (+1, −1) (only +1 without parity), l in
// 0..lmax; keep those reachable from simplify(input) ⊗ sh; scalars (l = 0) and gated (l > 0) in
// hidden order. The convolution outputs what the nonlinearity reads: the Gate's sorted input
// (gates 0e, or 0o when 0e is unreachable) or simplify(scalars + gated) for norm.
namespace {

class ConvNetLayer : public EquivariantLayer {
 public:
  explicit ConvNetLayer(const Config& config) : EquivariantLayer("ConvNetLayer", config) {
    const int64_t hidden_lmax = config.get_int_at_least("hidden_irreps_lmax", 0);
    const int64_t sh_lmax = config.get_int_at_least("edge_sh_lmax", 0);
    const int64_t features = config.get_int_at_least("conv_feature_size", 1);
    const int64_t num_radial_basis = config.get_int_at_least("num_radial_basis", 1);
    // convolution_kwargs and resnet are only type-checked (by their declaration): resnet never takes
    // effect in KLay (Irreps compared with a str).

    InteractionBlockSettings conv;
    conv.irreps_in = irreps_from_blocks(config, "input_block");
    conv.node_attr_irreps = irreps_from_blocks(config, "node_attr_block");
    conv.edge_attr_irreps = Irreps::spherical_harmonics(static_cast<int>(sh_lmax));
    conv.num_edge_embeddings = num_radial_basis;
    conv.invariant_layers = config.get_int_at_least("radial_network_layers", 0);
    conv.invariant_neurons = config.get_int_at_least("radial_network_hidden_dim", 1);
    conv.avg_num_neighbors = config.get_double("avg_neigh");
    if (!(*conv.avg_num_neighbors > 0)) config.fail("avg_neigh", "must be positive");

    const std::vector<std::string> known{"abs", "tanh", "ssp", "silu"};
    const std::string scalar_even = activation_name(config, "nonlinearity_scalars", "e", known);
    const std::string scalar_odd = activation_name(config, "nonlinearity_scalars", "o", known);
    const std::string gate_even = activation_name(config, "nonlinearity_gates", "e", known);
    const std::string gate_odd = activation_name(config, "nonlinearity_gates", "o", known);
    auto scalar_act = [&](const Irrep& ir) { return ir.p == 1 ? scalar_even : scalar_odd; };

    const Irreps input_simplified = conv.irreps_in.simplify();
    auto path_exists = [&](const Irrep& ir) {
      for (const MulIrrep& a : input_simplified)
        for (const MulIrrep& b : conv.edge_attr_irreps)
          for (const Irrep& c : e3nn::irrep_product(a.ir, b.ir))
            if (c == ir) return true;
      return false;
    };
    std::vector<MulIrrep> scalars, gated;
    const std::vector<int> parities =
        config.get_bool("parity") ? std::vector<int>{1, -1} : std::vector<int>{1};
    for (int p : parities)
      for (int l = 0; l <= hidden_lmax; ++l) {
        const Irrep ir{l, p};
        if (path_exists(ir)) (l == 0 ? scalars : gated).push_back(MulIrrep{features, ir});
      }
    const Irreps irreps_scalars(scalars), irreps_gated(gated);

    const std::string type = config.get_string("nonlinearity_type");
    if (type == "gate") {
      const Irrep gate_ir = path_exists(Irrep{0, 1}) ? Irrep{0, 1} : Irrep{0, -1};
      std::vector<MulIrrep> gates;
      for (const MulIrrep& entry : gated) gates.push_back(MulIrrep{entry.mul, gate_ir});
      std::vector<std::string> scalar_acts, gate_acts;
      for (const MulIrrep& entry : scalars) scalar_acts.push_back(scalar_act(entry.ir));
      gate_acts.assign(gates.size(), gate_ir.p == 1 ? gate_even : gate_odd);
      gate_ = e3nn::Gate(irreps_scalars, scalar_acts, Irreps(gates), gate_acts, irreps_gated);
      conv.irreps_out = gate_->irreps_in().simplify();
    } else if (type == "norm") {
      conv.irreps_out = (irreps_scalars + irreps_gated).simplify();
      norm_ = e3nn::NormActivation(conv.irreps_out, scalar_even);
    } else {
      config.fail("nonlinearity_type", "must be gate or norm, got '" + type + "'");
    }

    conv_ = register_module("conv", std::make_shared<InteractionBlock>(config, conv, "ConvNetLayer"));
    if (gate_) register_module("equivariant_nonlin", gate_);
    if (norm_) register_module("equivariant_nonlin", norm_);
  }

  std::optional<Irreps> input_irreps(int port) const override { return conv_->input_irreps(port); }
  std::optional<Irreps> output_irreps(int64_t item) const override {
    if (item >= 0) return std::nullopt;
    return gate_ ? gate_->irreps_out() : norm_->irreps_out();
  }

  c10::IValue call(const CallArgs& call) override {
    const std::vector<at::Tensor> in = conv_->common_inputs(call);
    const at::Tensor h = conv_->forward(in[0], in[1], in[2], in[3], in[4]);
    return gate_ ? kernels::gate(*gate_, h) : kernels::norm_activation(*norm_, h);
  }

  // Readers of the activated scalars only (an energy readout) need neither the gated irreps nor
  // the message paths into them.
  std::shared_ptr<Layer> restricted_to(const std::vector<int64_t>& read) const override;

 private:
  std::shared_ptr<InteractionBlock> conv_;
  e3nn::Gate gate_{nullptr};
  e3nn::NormActivation norm_{nullptr};
};

// ConvNetLayer's result in its activated scalars, zero in the gated columns.
class ConvNetLayerScalars : public Layer {
 public:
  ConvNetLayerScalars(std::shared_ptr<InteractionBlock> conv, e3nn::Gate gate, InteractionBlock::Restriction only)
      : conv_(std::move(conv)), gate_(std::move(gate)), only_(std::move(only)) {}

  c10::IValue call(const CallArgs& call) override {
    const std::vector<at::Tensor> in = conv_->common_inputs(call);
    return kernels::gate_scalars(*gate_, conv_->forward(in[0], in[1], in[2], in[3], in[4], {}, &only_));
  }

 private:
  std::shared_ptr<InteractionBlock> conv_;
  e3nn::Gate gate_;
  InteractionBlock::Restriction only_;
};

std::shared_ptr<Layer> ConvNetLayer::restricted_to(const std::vector<int64_t>& read) const {
  if (!gate_ || read.empty() || read.back() >= gate_->scalars_width()) return nullptr;
  std::optional<InteractionBlock::Restriction> only = conv_->restriction_to(gate_->scalar_irreps());
  if (!only) return nullptr;
  const at::Tensor scalars = gate_->scalars_columns().contiguous();
  only->columns.assign(scalars.data_ptr<int64_t>(), scalars.data_ptr<int64_t>() + scalars.numel());
  return std::make_shared<ConvNetLayerScalars>(conv_, gate_, std::move(*only));
}

}  // namespace

KLAY_REGISTER_LAYER(
    InteractionBlock,
    [](const Config& config) -> std::shared_ptr<Layer> {
      return std::make_shared<InteractionBlock>(config, InteractionBlockSettings::from_config(config));
    },
    {"x", "h", "edge_length_embeddings", "edge_sh", "edge_index"}, {"h"});
KLAY_REGISTER_LAYER(ConvNetLayer, make_layer<ConvNetLayer>,
                    {"x", "h", "edge_length_embeddings", "edge_sh", "edge_index"}, {"h"});

}  // namespace klay
