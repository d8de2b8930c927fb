// EGCL — E(n)-equivariant graph convolution (Satorras et al.), KLay's torch_geometric layer
// (docs/layers.md#egcl).
//
// Ports:   h [N,H], coords [N,3], edge_index [2,E] int64, shift_vectors [E,3], batch [N] int64
//          → (h [N,H], coords [N,3]).
// Config:  input_dim (=32, unused by the layer sizes, as in Python), hidden_dim H (=32),
//          edge_dim (=0), activation (only the default SiLU), n_hidden_layers n (=1),
//          normalize_radial (=false).
// State:   phi_e.{0,2,…,2n+2}.{weight,bias}  Linear(2H+1→H), n×Linear(H→H), Linear(H→H)
//          phi_r.{…}                        Linear(H→H),    n×Linear(H→H), Linear(H→1)
//          phi_h.{…}                        Linear(2H→H),   n×Linear(H→H), Linear(H→H)
//
// PyG flow source→target: j = edge_index[0] sends, i = edge_index[1] receives. The relative
// vector is coords[j] − coords[i] − shift (the opposite sign of SphericalHarmonicEdgeAttrs' + shift,
// kept for compatibility with trained models).
//
// Decisions where Python is broken (docs/layers.md#quirk-egcl):
// * Python sums messages without a dim_size (size max(i)+1); when the last nodes receive no edge
//   the following concatenation fails. We sum into all N nodes (torch_geometric's own default),
//   which equals Python whenever Python runs and gives nodes without edges a zero message, as
//   ghost atoms in MD need.
// * normalize_radial: true divides [E,3] by [E] (a crash for E ≠ 3); edge_dim > 0 widens phi_e
//   but no edge attributes exist; `activation` cannot be given from YAML. All three are config
//   errors here.
// * C = 1/(atoms in the graph − 1) is inf for a one-atom graph, as in Python (its dX is 0·inf only
//   if the atom has edges to itself through periodic images).
#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>

#include "e3nn/scatter.hpp"
#include "layers/named_layer.hpp"
#include "layers/torch_mlp.hpp"

namespace klay {

namespace {

class EGCL : public NamedLayer {
 public:
  explicit EGCL(const Config& config) : NamedLayer("EGCL", config) {
    hidden_dim_ = config.get_int_at_least("hidden_dim", 1);
    const int64_t n_hidden = config.get_int_at_least("n_hidden_layers", 0);
    // input_dim is only type-checked (by its declaration): Python ignores it too.
    if (config.get_int("edge_dim") != 0)
      config.fail("edge_dim",
                  "must be 0: KLay's EGCL has no edge-attribute input (a nonzero edge_dim only widens "
                  "phi_e, and Python then fails with a shape error)");
    if (config.get_bool("normalize_radial"))
      config.fail("normalize_radial",
                  "true is not supported: KLay divides the [E,3] edge vectors by the [E] lengths, "
                  "which fails in Python for any edge count but 3");
    if (config.has("activation"))
      config.fail("activation",
                  "cannot be set from YAML (KLay expects a torch module instance); the activation "
                  "is always SiLU");

    const int64_t H = hidden_dim_;
    phi_e_ = register_module("phi_e", make_sequential_mlp(2 * H + 1, H, H, n_hidden, MlpActivation::silu));
    phi_r_ = register_module("phi_r", make_sequential_mlp(H, H, 1, n_hidden, MlpActivation::silu));
    phi_h_ = register_module("phi_h", make_sequential_mlp(2 * H, H, H, n_hidden, MlpActivation::silu));
  }

  c10::IValue call(const CallArgs& call) override {
    const at::Tensor h = tensor_input(call, 0, "h");
    const at::Tensor coords = tensor_input(call, 1, "coords");
    const at::Tensor edge_index = index_input(call, 2, "edge_index");
    const at::Tensor shift_vectors = tensor_input(call, 3, "shift_vectors");
    const at::Tensor batch = index_input(call, 4, "batch");
    check_inputs(h, coords, edge_index, shift_vectors, batch);

    const int64_t n_nodes = h.size(0);
    const at::Tensor source = edge_index[0];
    const at::Tensor target = edge_index[1];

    const int64_t n_graphs = n_nodes > 0 ? batch.max().item<int64_t>() + 1 : 0;
    const at::Tensor atoms_per_graph = e3nn::scatter_sum(at::ones_like(batch), batch, n_graphs);
    const at::Tensor coordinate_scale = 1.0 / (atoms_per_graph.to(coords.scalar_type()) - 1.0);

    const at::Tensor relative =
        coords.index_select(0, source) - coords.index_select(0, target) - shift_vectors;
    // pow/sum/sqrt rather than norm(): Python's expression, hence its rounding and its gradient.
    const at::Tensor distance = relative.pow(2).sum(1).sqrt();
    const at::Tensor edge_message = phi_e_->forward(
        at::cat({h.index_select(0, target), h.index_select(0, source), distance.unsqueeze(1)}, 1));
    const at::Tensor edge_displacement = relative * phi_r_->forward(edge_message);

    const at::Tensor node_message = e3nn::scatter_sum(edge_message, target, n_nodes);
    const at::Tensor displacement = e3nn::scatter_sum(edge_displacement, target, n_nodes) *
                                    coordinate_scale.index_select(0, batch).unsqueeze(1);

    const at::Tensor h_out = phi_h_->forward(at::cat({h, node_message}, 1));
    return c10::ivalue::Tuple::create({h_out, coords + displacement});
  }

 private:
  void check_inputs(const at::Tensor& h, const at::Tensor& coords, const at::Tensor& edge_index,
                    const at::Tensor& shift_vectors, const at::Tensor& batch) const {
    const int64_t n_nodes = h.dim() == 2 ? h.size(0) : -1;
    if (h.dim() != 2 || h.size(1) != hidden_dim_)
      fail("h must be [N, hidden_dim=" + std::to_string(hidden_dim_) + "], got " + c10::str(h.sizes()));
    if (coords.dim() != 2 || coords.size(0) != n_nodes || coords.size(1) != 3)
      fail("coords must be [N=" + std::to_string(n_nodes) + ", 3], got " + c10::str(coords.sizes()));
    const int64_t n_edges = edge_count(edge_index);
    check_edge_nodes(edge_index, n_nodes);
    if (shift_vectors.dim() != 2 || shift_vectors.size(1) != 3 ||
        (shift_vectors.size(0) != n_edges && shift_vectors.size(0) != 1))
      fail("shift_vectors must be [E=" + std::to_string(n_edges) + ", 3], got " +
           c10::str(shift_vectors.sizes()));
    if (batch.dim() != 1 || batch.size(0) != n_nodes)
      fail("batch must be [N=" + std::to_string(n_nodes) + "], got " + c10::str(batch.sizes()));
    if (n_nodes > 0 && batch.min().item<int64_t>() < 0) fail("batch holds a negative graph index");
  }

  int64_t hidden_dim_ = 0;
  torch::nn::Sequential phi_e_{nullptr}, phi_r_{nullptr}, phi_h_{nullptr};
};

}  // namespace

KLAY_REGISTER_LAYER(EGCL, make_layer<EGCL>, {"h", "coords", "edge_index", "shift_vectors", "batch"},
                    {"h", "coords"});

}  // namespace klay
