// MACE_layer (docs/layers.md#mace-layer; KLay vendors ACEsuit/mace-layer ddc076b): a MACE interaction
// (RealAgnosticResidualInteractionBlock) followed by the equivariant product basis
// (SymmetricContraction + Linear), with the residual skip tensor product.
//
// Ports:  vectors [E, 3] (edge vectors, sender → receiver), node_feats [N, dim I],
//         node_attrs [N, dim A], edge_feats [E, num_radial_basis], edge_index [2, E]
//         → node_feats [N, dim H].
// Config: lmax, correlation, num_elements, hidden_irreps_block H, input_block I (block lists),
//         num_radial_basis (=8), node_attr_block A (=num_elements x 0e), avg_num_neighbors (=1.0),
//         use_sc (=true).
// Derived: sh = 0e + 1o + … + lmax, F = H.count(0e), target T = simplify(sort(sh × F))
//         (= F x0e + F x1o + …).
// State:  interaction.linear_up.{weight,bias,output_mask}        Linear(I → I)
//         interaction.conv_tp.{weight [0],output_mask,_compiled_main_left_right._w3j_*}
//                                                                 uvu I ⊗ sh → mid, per-edge weights
//         interaction.conv_tp_weights.layer{0..3}.weight         FCNet([n_rad, 64, 64, 64, W_tp], silu)
//         interaction.linear.{weight,bias,output_mask}           Linear(simplify(mid) → T)
//         interaction.skip_tp.{weight,output_mask,…}             FCTP(I, A → H) (present even without use_sc)
//         product.symmetric_contractions.contractions.{k}.{U_matrix_ν, weights_max, weights.t}
//         product.linear.{weight,bias,output_mask}               Linear(H → H)
// MACE convention (docs/layers.md#conventions): sender = edge_index[0], receiver = edge_index[1];
// the aggregated message is divided by avg_num_neighbors itself (NequIP divides by its square
// root).
#include <ATen/ATen.h>

#include "base/error.hpp"
#include "e3nn/activations.hpp"
#include "e3nn/linear.hpp"
#include "e3nn/symmetric_contraction.hpp"
#include "e3nn/tensor_product.hpp"
#include "kernels/column_permutation.hpp"
#include "kernels/linear.hpp"
#include "kernels/self_connection.hpp"
#include "kernels/spherical_harmonics.hpp"
#include "kernels/symmetric_contraction.hpp"
#include "kernels/uvu_convolution.hpp"
#include "layers/convolution_tensor_product.hpp"
#include "layers/equivariant_layer.hpp"
#include "layers/irreps_config.hpp"

namespace klay {
namespace {

using e3nn::Irrep;
using e3nn::Irreps;
using e3nn::MulIrrep;

// mace-layer hard-codes the radial MLP of the interaction block.
const std::vector<int64_t> kRadialHidden{64, 64, 64};

class MaceLayer : public EquivariantLayer {
 public:
  explicit MaceLayer(const Config& config) : EquivariantLayer("MACE_layer", config) {
    const int64_t lmax = config.get_int_at_least("lmax", 0);
    const int64_t correlation = config.get_int_at_least("correlation", 1);
    const int64_t num_elements = config.get_int_at_least("num_elements", 1);
    const Irreps hidden = irreps_from_blocks(config, "hidden_irreps_block");
    const Irreps node_feats_irreps = irreps_from_blocks(config, "input_block");
    num_radial_ = config.get_int_at_least("num_radial_basis", 1);
    const Irreps node_attr_irreps = config.has("node_attr_block")
                            ? irreps_from_blocks(config, "node_attr_block")
                            : Irreps({MulIrrep{num_elements, Irrep{0, 1}}});
    // The contraction weights each element channel of node_attrs (θ = node_attrs · W).
    if (node_attr_irreps.dim() != num_elements)
      config.fail("node_attr_block", "node attributes have dimension " + std::to_string(node_attr_irreps.dim()) +
                                         " but MACE weights them per element: num_elements is " +
                                         std::to_string(num_elements));
    avg_num_neighbors_ = config.get_double("avg_num_neighbors");
    if (avg_num_neighbors_ == 0) config.fail("avg_num_neighbors", "must not be zero (messages are divided by it)");
    use_sc_ = config.get_bool("use_sc");

    num_features_ = hidden.count(Irrep{0, 1});
    if (num_features_ == 0) config.fail("hidden_irreps_block", "needs a 0e block: its mul F is MACE's channel count");
    // Every contraction outputs F channels whatever the entry's mul says
    // (docs/layers.md#quirk-mace-hidden-mul); Python only fails later, with a shape error, so the
    // mismatch is refused here.
    for (const MulIrrep& entry : hidden)
      if (entry.mul != num_features_)
        config.fail("hidden_irreps_block", "every block must have mul F = " + std::to_string(num_features_) +
                                               " (the number of 0e channels), but " + entry.ir.to_string() +
                                               " has mul " + std::to_string(entry.mul));

    const Irreps sh_irreps = Irreps::spherical_harmonics(static_cast<int>(lmax));
    const Irreps target = sh_irreps.repeat(static_cast<int>(num_features_)).sort().irreps.simplify();
    lmax_ = static_cast<int>(lmax);

    auto interaction = register_module("interaction", std::make_shared<torch::nn::Module>());
    linear_up_ = interaction->register_module("linear_up", e3nn::Linear(node_feats_irreps, node_feats_irreps));
    conv_tp_ = interaction->register_module("conv_tp",
                                            convolution_tensor_product(node_feats_irreps, sh_irreps, target));
    std::vector<int64_t> radial_sizes{num_radial_};
    radial_sizes.insert(radial_sizes.end(), kRadialHidden.begin(), kRadialHidden.end());
    radial_sizes.push_back(conv_tp_->weight_numel());
    conv_tp_weights_ = interaction->register_module("conv_tp_weights", e3nn::FullyConnectedNet(radial_sizes, "silu"));
    linear_ = interaction->register_module("linear", e3nn::Linear(conv_tp_->irreps_out().simplify(), target));
    skip_tp_ = interaction->register_module(
        "skip_tp", e3nn::fully_connected_tensor_product(node_feats_irreps, node_attr_irreps, hidden));

    auto product = register_module("product", std::make_shared<torch::nn::Module>());
    try {
      symmetric_contractions_ = product->register_module(
          "symmetric_contractions",
          e3nn::SymmetricContraction(target, hidden, static_cast<int>(correlation), num_elements));
    } catch (const Error& e) {
      // MACE's UnboundLocalError in U_matrix_real (docs/layers.md#quirk-mace-hidden-mul).
      config.fail("hidden_irreps_block", std::string("not reachable at every correlation order: ") + e.what());
    }
    product_linear_ = product->register_module("linear", e3nn::Linear(hidden, hidden));

    // The aggregated message in layout T is regrouped channel-major as X[n, c, i] (i over the
    // coupling dimension 0e, 1o, …) by one gather: column c·L + i of X reads T's column
    // offset(l(i)) + c·d(l(i)) + (i − first index of l(i)).
    coupling_dim_ = sh_irreps.dim();
    std::vector<int64_t> columns;
    columns.reserve(num_features_ * coupling_dim_);
    const std::vector<int64_t> offsets = target.offsets();
    for (int64_t c = 0; c < num_features_; ++c)
      for (size_t k = 0; k < target.size(); ++k)
        for (int64_t m = 0; m < target[k].ir.dim(); ++m) columns.push_back(offsets[k] + c * target[k].ir.dim() + m);
    coupling_ = kernels::ColumnPermutation(columns);
    declare_input(1, node_feats_irreps);
    declare_input(2, node_attr_irreps);
    declare_output(hidden);
  }

  c10::IValue call(const CallArgs& call) override {
    const at::Tensor vectors = tensor_input(call, 0, "vectors");
    const at::Tensor node_feats = features_input(call, 1, "node_feats");
    const at::Tensor node_attrs = features_input(call, 2, "node_attrs");
    const at::Tensor edge_feats = tensor_input(call, 3, "edge_feats");
    const at::Tensor edge_index = index_input(call, 4, "edge_index");
    const int64_t n_nodes = node_feats.size(0);
    if (node_attrs.size(0) != n_nodes)
      fail("node_attrs has " + std::to_string(node_attrs.size(0)) + " rows but node_feats has " +
           std::to_string(n_nodes));
    const int64_t n_edges = edge_count(edge_index);
    if (vectors.dim() != 2 || vectors.size(0) != n_edges || vectors.size(1) != 3)
      fail("vectors must be [E=" + std::to_string(n_edges) + ", 3], got " + c10::str(vectors.sizes()));
    if (edge_feats.dim() != 2 || edge_feats.size(0) != n_edges || edge_feats.size(1) != num_radial_)
      fail("edge_feats must be [E=" + std::to_string(n_edges) + ", num_radial_basis=" + std::to_string(num_radial_) +
           "], got " + c10::str(edge_feats.sizes()));
    check_edge_nodes(edge_index, n_nodes);
    return forward(vectors, node_feats, node_attrs, edge_feats, edge_index);
  }

  at::Tensor forward(const at::Tensor& vectors, const at::Tensor& node_feats, const at::Tensor& node_attrs,
                     const at::Tensor& edge_feats, const at::Tensor& edge_index) const {
    const int64_t n_nodes = node_feats.size(0);
    const at::Tensor sender = edge_index[0];
    const at::Tensor receiver = edge_index[1];
    const at::Tensor edge_sh = kernels::spherical_harmonics(lmax_, vectors, /*normalize=*/true);

    // MACE divides linear(m) by avg_num_neighbors; the Linear has no bias, so the division is
    // folded into the convolution.
    const at::Tensor summed_messages =
        kernels::radial_convolution_scatter(*conv_tp_, *conv_tp_weights_, edge_feats, /*weight_columns=*/{},
                                            /*edge_scale=*/{}, kernels::linear(*linear_up_, node_feats), edge_sh,
                                            sender, receiver, n_nodes, 1.0 / avg_num_neighbors_);
    const at::Tensor aggregated = kernels::linear(*linear_, summed_messages);
    const at::Tensor coupled = coupling_.apply(aggregated).view({n_nodes, num_features_, coupling_dim_});

    at::Tensor out = kernels::linear(
        *product_linear_, symmetric_contractions_->forward(coupled, node_attrs, kernels::sparse_contraction_chain));
    if (use_sc_) out = kernels::add_self_connection(out, *skip_tp_, node_feats, node_attrs);
    return out;
  }

 private:
  int64_t num_radial_ = 8;
  int lmax_ = 0;
  double avg_num_neighbors_ = 1.0;
  bool use_sc_ = true;
  int64_t num_features_ = 0, coupling_dim_ = 1;
  kernels::ColumnPermutation coupling_;  // F·L columns: irreps blocks to channel-major

  e3nn::Linear linear_up_{nullptr};
  e3nn::TensorProduct conv_tp_{nullptr};
  e3nn::FullyConnectedNet conv_tp_weights_{nullptr};
  e3nn::Linear linear_{nullptr};
  e3nn::TensorProduct skip_tp_{nullptr};
  e3nn::SymmetricContraction symmetric_contractions_{nullptr};
  e3nn::Linear product_linear_{nullptr};
};

}  // namespace

KLAY_REGISTER_LAYER(MACE_layer, make_layer<MaceLayer>,
                    {"vectors", "node_feats", "node_attrs", "edge_feats", "edge_index"}, {"node_feats"});

}  // namespace klay
