// The attention layers: E3Attention (docs/layers.md#e3-attention) and
// E3AttentionPooling (docs/layers.md#e3-attention-pooling).
#include <cmath>

#include <ATen/ATen.h>

#include "e3nn/activations.hpp"
#include "e3nn/irreps.hpp"
#include "e3nn/linear.hpp"
#include "e3nn/scatter.hpp"
#include "e3nn/tensor_product.hpp"
#include "kernels/linear.hpp"
#include "kernels/radial_mlp.hpp"
#include "layers/equivariant_layer.hpp"
#include "layers/gated_atomwise_linear.hpp"
#include "layers/irreps_config.hpp"

namespace klay {
namespace {

using e3nn::Irrep;
using e3nn::Irreps;
using e3nn::MulIrrep;

// e3nn.math.soft_unit_step: exp(−1/x) for x > 0, else 0 (derivative exp(−1/x)/x², 0 for x ≤ 0).
// The exp branch sees x = 1 where it is not taken, so its gradient there is 0 and never NaN.
at::Tensor soft_unit_step(const at::Tensor& x) {
  const at::Tensor positive = x > 0;
  const at::Tensor safe = at::where(positive, x, at::ones_like(x));
  return at::where(positive, at::exp(-1.0 / safe), at::zeros_like(x));
}

// E3Attention: SE(3)-transformer attention over the edges, after e3nn's tutorial.
// Ports:  f [N, dim I], edge_index [2, E], edge_lengths [E], edge_sh [E, dim sh(edge_sh_lmax)],
//         edge_length_embeddings [E, number_of_basis] → f_out [N, dim V].
// Config: irreps_input_block I, irreps_query_block Q, irreps_key_block K, irreps_value_block V
//         (block lists), edge_sh_lmax, number_of_basis (=8), max_radius (=4.0), radial_neurons (=16).
// State:  h_q.{weight,bias,output_mask}                 Linear(I → Q)
//         tp_k.{weight [0],output_mask,_compiled_main_left_right._w3j_*}   FCTP(I, sh → K), per-edge weights
//         fc_k.layer{0,1}.weight                        FCNet([nb, radial_neurons, tp_k.weight_numel], silu)
//         tp_v.*, fc_v.*                                the same for V
//         dot.{weight,output_mask}                      FCTP(Q, K → 0e), internal weights
// KLay's quirks, kept (docs/layers.md#quirk-e3attention): the key comes from the *destination*
// node f[edge_index[1]] (the tutorial uses the source); no max-subtraction before exp; the output
// irreps are V.
// src = edge_index[0], dst = edge_index[1]; attention normalised over the edges into each dst.
class E3Attention : public EquivariantLayer {
 public:
  explicit E3Attention(const Config& config) : EquivariantLayer("E3Attention", config) {
    const Irreps irreps_in = irreps_from_blocks(config, "irreps_input_block");
    const Irreps irreps_query = irreps_from_blocks(config, "irreps_query_block");
    const Irreps irreps_key = irreps_from_blocks(config, "irreps_key_block");
    const Irreps irreps_value = irreps_from_blocks(config, "irreps_value_block");
    const int64_t sh_lmax = config.get_int_at_least("edge_sh_lmax", 0);
    irreps_sh_ = Irreps::spherical_harmonics(static_cast<int>(sh_lmax));
    number_of_basis_ = config.get_int_at_least("number_of_basis", 1);
    max_radius_ = config.get_double("max_radius");
    if (!(max_radius_ > 0)) config.fail("max_radius", "must be positive");
    const int64_t radial_neurons = config.get_int_at_least("radial_neurons", 1);

    h_q_ = register_module("h_q", e3nn::Linear(irreps_in, irreps_query));
    tp_k_ = register_module("tp_k", e3nn::fully_connected_tensor_product(irreps_in, irreps_sh_, irreps_key,
                                                                         /*internal_weights=*/false));
    const std::vector<int64_t> sizes_k{number_of_basis_, radial_neurons, tp_k_->weight_numel()};
    fc_k_ = register_module("fc_k", e3nn::FullyConnectedNet(sizes_k, "silu"));
    tp_v_ = register_module("tp_v", e3nn::fully_connected_tensor_product(irreps_in, irreps_sh_, irreps_value,
                                                                         /*internal_weights=*/false));
    const std::vector<int64_t> sizes_v{number_of_basis_, radial_neurons, tp_v_->weight_numel()};
    fc_v_ = register_module("fc_v", e3nn::FullyConnectedNet(sizes_v, "silu"));
    dot_ = register_module("dot", e3nn::fully_connected_tensor_product(irreps_query, irreps_key, Irreps("1x0e")));
    declare_input(0, irreps_in);
    declare_input(3, irreps_sh_);
    declare_output(irreps_value);
  }

  c10::IValue call(const CallArgs& call) override {
    const at::Tensor f = features_input(call, 0, "f");
    const at::Tensor edge_index = index_input(call, 1, "edge_index");
    const at::Tensor edge_lengths = tensor_input(call, 2, "edge_lengths");
    const at::Tensor edge_sh = tensor_input(call, 3, "edge_sh");
    const at::Tensor embeddings = tensor_input(call, 4, "edge_length_embeddings");
    const int64_t n_nodes = f.size(0);
    const int64_t n_edges = edge_count(edge_index);
    if (edge_lengths.dim() != 1 || edge_lengths.size(0) != n_edges)
      fail("edge_lengths must be [E=" + std::to_string(n_edges) + "], got " + c10::str(edge_lengths.sizes()));
    if (edge_sh.dim() != 2 || edge_sh.size(0) != n_edges || edge_sh.size(1) != irreps_sh_.dim())
      fail("edge_sh must be [E=" + std::to_string(n_edges) + ", " + std::to_string(irreps_sh_.dim()) + "] (irreps " +
           irreps_sh_.to_string() + "), got " + c10::str(edge_sh.sizes()));
    if (embeddings.dim() != 2 || embeddings.size(0) != n_edges || embeddings.size(1) != number_of_basis_)
      fail("edge_length_embeddings must be [E=" + std::to_string(n_edges) + ", number_of_basis=" +
           std::to_string(number_of_basis_) + "], got " + c10::str(embeddings.sizes()));
    check_edge_nodes(edge_index, n_nodes);
    return forward(f, edge_index, edge_lengths, edge_sh, embeddings);
  }

  at::Tensor forward(const at::Tensor& f, const at::Tensor& edge_index, const at::Tensor& edge_lengths,
                     const at::Tensor& edge_sh, const at::Tensor& embeddings) const {
    const int64_t n_nodes = f.size(0);
    const at::Tensor src = edge_index[0];
    const at::Tensor dst = edge_index[1];
    const at::Tensor f_dst = f.index_select(0, dst);

    const at::Tensor query = kernels::linear(*h_q_, f).index_select(0, dst);
    const at::Tensor key = tp_k_->forward(f_dst, edge_sh, kernels::radial_mlp(*fc_k_, embeddings));
    const at::Tensor value = tp_v_->forward(f.index_select(0, src), edge_sh, kernels::radial_mlp(*fc_v_, embeddings));

    const at::Tensor cutoff = soft_unit_step(10.0 * (1.0 - edge_lengths / max_radius_));
    const at::Tensor exp_logits = cutoff.unsqueeze(1) * at::exp(dot_->forward(query, key));  // [E, 1]
    at::Tensor z = e3nn::scatter_sum(exp_logits, dst, n_nodes);
    z = at::where(z == 0, at::ones_like(z), z);  // nodes without (live) edges: Python's z[z == 0] = 1
    const at::Tensor alpha = exp_logits / z.index_select(0, dst);
    return e3nn::scatter_sum(at::sqrt(at::relu(alpha)) * value, dst, n_nodes);
  }

 private:
  Irreps irreps_sh_;
  int64_t number_of_basis_ = 8;
  double max_radius_ = 4.0;
  e3nn::Linear h_q_{nullptr};
  e3nn::TensorProduct tp_k_{nullptr}, tp_v_{nullptr}, dot_{nullptr};
  e3nn::FullyConnectedNet fc_k_{nullptr}, fc_v_{nullptr};
};

// E3AttentionPooling: attention-weighted mean of the node features over the graph.
// Ports:  f [N, dim I] → f_out [1, dim I]. KLay cannot wire its `batch` argument
//         (docs/layers.md#quirk-pooling-batch), so every node belongs to graph 0 and the output
//         has one row.
// Config: irreps_input_block I, irreps_query_block Q, irreps_key_block K (block lists); I must
//         suit GatedAtomwiseLinear (one even l=0 block, at least one l>0 block).
// State:  scale (0-dim buffer 1/√dim K), h_q.* (GatedAtomwiseLinear I → Q), fc_k.* (I → K),
//         fc_v.* (I → I), dot.{weight,output_mask} (FCTP(Q, K → 0e)).
// out = Σ_n w_n v_n / max(Σ_n w_n, 1e-8), w_n = exp(scale · dot(q_n, k_n)) (no max-subtraction).
class E3AttentionPooling : public EquivariantLayer {
 public:
  explicit E3AttentionPooling(const Config& config) : EquivariantLayer("E3AttentionPooling", config) {
    const Irreps irreps_in = irreps_from_blocks(config, "irreps_input_block");
    const Irreps irreps_query = irreps_from_blocks(config, "irreps_query_block");
    const Irreps irreps_key = irreps_from_blocks(config, "irreps_key_block");
    if (irreps_key.dim() == 0) config.fail("irreps_key_block", "the keys must not be empty (scale is 1/sqrt(dim))");
    const std::string in_key = "irreps_input_block";
    h_q_ = register_module("h_q", std::make_shared<GatedAtomwiseLinear>(config, in_key, irreps_in, irreps_query));
    fc_k_ = register_module("fc_k", std::make_shared<GatedAtomwiseLinear>(config, in_key, irreps_in, irreps_key));
    fc_v_ = register_module("fc_v", std::make_shared<GatedAtomwiseLinear>(config, in_key, irreps_in, irreps_in));
    dot_ = register_module("dot", e3nn::fully_connected_tensor_product(irreps_query, irreps_key, Irreps("1x0e")));
    scale_ = register_buffer("scale", at::scalar_tensor(1.0 / std::sqrt(static_cast<double>(irreps_key.dim())),
                                                        at::kDouble));
    declare_input(0, irreps_in);
    declare_output(irreps_in);
  }

  c10::IValue call(const CallArgs& call) override { return forward(features_input(call, 0, "f")); }

  at::Tensor forward(const at::Tensor& f) const {
    const at::Tensor weights = at::exp(dot_->forward(h_q_->forward(f), fc_k_->forward(f)) * scale_);  // [N, 1]
    const at::Tensor weighted_sum = (fc_v_->forward(f) * weights).sum(0, /*keepdim=*/true);
    return weighted_sum / weights.sum(0, /*keepdim=*/true).clamp_min(1e-8);
  }

 private:
  std::shared_ptr<GatedAtomwiseLinear> h_q_, fc_k_, fc_v_;
  e3nn::TensorProduct dot_{nullptr};
  at::Tensor scale_;
};

}  // namespace

KLAY_REGISTER_LAYER(E3Attention, make_layer<E3Attention>,
                    {"f", "edge_index", "edge_lengths", "edge_sh", "edge_length_embeddings"}, {"f_out"});
KLAY_REGISTER_LAYER(E3AttentionPooling, make_layer<E3AttentionPooling>, {"f"}, {"f_out"});

}  // namespace klay
