// RadialAttention and AttentionInteractionBlock (docs/layers.md#radial-attention).
//
// Neither layer can be built in Python KLay v0.9.6: RadialAttention.__init__ calls
// `torch.nn.functional.silu()` without an argument where it meant an activation module (TypeError),
// and AttentionInteractionBlock builds one (and its from_config lacks a `return`). There are no
// trained Python models and no reference data; these are the *intended* semantics, read from the
// code, and they are tested against hand-computed values and equivariance only.
#include <ATen/ATen.h>

#include <cmath>

#include "layers/named_layer.hpp"
#include "layers/nequip_convolution.hpp"
#include "layers/torch_mlp.hpp"

namespace klay {

namespace {

// RadialAttention: a scalar weight per edge from its length.
// Ports:  r_ijs [E] → attention [E, 1].
// Config: n_input, n_hidden_layers, hidden_layer_width (all required), nonlinearity = silu | ssp
//         (Python's constructor argument, default silu).
// State:  n [n_input] float32 buffer = π·[1 … n_input];
//         nn.{0,2,…,2·n_hidden_layers+2}.{weight,bias} = Linear(n_input→w), n_hidden × Linear(w→w),
//         Linear(w→1), with the (unnormalised) activation between them.
// Forward: nn(sin(n · r) / r) with r as [E,1] (no division by a cutoff; r = 0 gives NaN as in Python).
class RadialAttention : public NamedLayer {
 public:
  RadialAttention(const Config& config, int64_t n_input, int64_t n_hidden_layers, int64_t width,
                  MlpActivation activation)
      : NamedLayer("RadialAttention", config) {
    // float32 like Python's buffer; the product with float64 lengths promotes to float64 but keeps
    // the float32-rounded frequencies.
    frequencies_ = register_buffer(
        "n", at::arange(1, n_input + 1, at::TensorOptions().dtype(at::kFloat)) * static_cast<float>(M_PI));
    mlp_ = register_module("nn", make_sequential_mlp(n_input, width, 1, n_hidden_layers, activation));
  }

  static std::shared_ptr<Layer> from_config(const Config& config) {
    const int64_t n_input = config.get_int_at_least("n_input", 1);
    const int64_t n_hidden_layers = config.get_int_at_least("n_hidden_layers", 0);
    const int64_t width = config.get_int_at_least("hidden_layer_width", 1);
    const std::string nonlinearity = config.get_string("nonlinearity");
    if (nonlinearity != "silu" && nonlinearity != "ssp")
      config.fail("nonlinearity", "must be silu or ssp, got '" + nonlinearity + "'");
    return std::make_shared<RadialAttention>(
        config, n_input, n_hidden_layers, width,
        nonlinearity == "ssp" ? MlpActivation::shifted_softplus : MlpActivation::silu);
  }

  at::Tensor forward(const at::Tensor& lengths) {
    const at::Tensor r = lengths.unsqueeze(-1);
    return mlp_->forward(at::sin(frequencies_ * r) / r);
  }

  c10::IValue call(const CallArgs& call) override {
    const at::Tensor lengths = tensor_input(call, 0, "r_ijs");
    if (lengths.dim() != 1) fail("r_ijs must be [E], got " + c10::str(lengths.sizes()));
    return forward(lengths);
  }

 private:
  at::Tensor frequencies_;
  torch::nn::Sequential mlp_{nullptr};
};

// AttentionInteractionBlock: the NequIP InteractionBlock whose messages are each multiplied by a
// RadialAttention weight of the edge length.
// Ports:  x, h, edge_length_embeddings, edge_sh, edge_index (as InteractionBlock), r_ijs [E]
//         → h [N, irreps_out].
// Config: as InteractionBlock, but nonlinearity_scalars defaults to {e: ssp} and
//         avg_num_neighbors is accepted and ignored: Python never divides here.
// State:  the InteractionBlock keys, plus radial_attention.{n, nn.*} of a
//         RadialAttention(n_input 8, n_hidden_layers 2, hidden_layer_width 8, silu) — fixed sizes
//         in Python.
class AttentionInteractionBlock : public InteractionBlock {
 public:
  explicit AttentionInteractionBlock(const Config& config)
      : InteractionBlock(config, settings_from_config(config), "AttentionInteractionBlock") {
    radial_attention_ = register_module(
        "radial_attention", std::make_shared<RadialAttention>(config, 8, 2, 8, MlpActivation::silu));
  }

  c10::IValue call(const CallArgs& call) override {
    const std::vector<at::Tensor> in = common_inputs(call);
    const at::Tensor lengths = tensor_input(call, 5, "r_ijs");
    if (lengths.dim() != 1 || lengths.size(0) != in[4].size(1))
      fail("r_ijs must be [E=" + std::to_string(in[4].size(1)) + "], got " + c10::str(lengths.sizes()));
    return forward(in[0], in[1], in[2], in[3], in[4], radial_attention_->forward(lengths));
  }

 private:
  static InteractionBlockSettings settings_from_config(const Config& config) {
    InteractionBlockSettings settings = InteractionBlockSettings::from_config(config);
    settings.avg_num_neighbors.reset();
    return settings;
  }

  std::shared_ptr<RadialAttention> radial_attention_;
};

}  // namespace

KLAY_REGISTER_LAYER(RadialAttention, RadialAttention::from_config, {"r_ijs"}, {"attention"});
KLAY_REGISTER_LAYER(AttentionInteractionBlock, make_layer<AttentionInteractionBlock>,
                    {"x", "h", "edge_length_embeddings", "edge_sh", "edge_index", "r_ijs"}, {"h"});

}  // namespace klay
