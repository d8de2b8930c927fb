// bench_layers: forward and forward+backward time of every implemented KLay layer at a typical MD
// size — 1,000 atoms, 30 edges per atom, 32 channels, lmax 2 (--quick: a tiny smoke size; --atoms N
// another number of atoms, e.g. few enough that the per-edge operands stay in cache).
//
// Each layer is built through the runtime's public path (klay::Model from YAML text, random
// initial parameters) and fed one shared synthetic structure: atoms uniform in a periodic box at
// a metal-like density; each atom sends 30 edges to random atoms, each edge a random direction of
// length 1–4 Å realised as a periodic-image shift (edge_vec = pos[j] − pos[i] + shift), so every
// geometric input (positions, shifts, lengths, spherical harmonics, radial basis) is consistent.
// The edge features are computed by the runtime's own SphericalHarmonicEdgeAttrs and
// RadialBasisEdgeEncoding.
//
// "forward" runs without autograd (inference); "forward+backward" records the graph and takes
// d(sum of floating outputs)/d(floating inputs) — what forces cost. A layer whose forward itself
// needs autograd (AutogradForces) runs its forward with gradients on.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include "base/error.hpp"
#include "bench_common.hpp"
#include "e3nn/activations.hpp"
#include "e3nn/irreps.hpp"
#include "e3nn/linear.hpp"
#include "kernels/linear.hpp"
#include "kernels/radial_mlp.hpp"
#include "kernels/uvu_convolution.hpp"
#include "klay.h"
#include "layers/convolution_tensor_product.hpp"
#include "layers/layer.hpp"
#include "runtime/model.hpp"

namespace klay::bench {
namespace {

struct Sizes {
  int64_t atoms, edges_per_atom, channels, lmax;
};

constexpr int64_t kElements = 4;
constexpr int64_t kRadialBasis = 8;
constexpr double kRadialCutoff = 5.0;  // above the longest edge (4 Å), so no edge is cut off entirely

// "32x0e+32x1o+32x2e"
std::string irreps_text(int64_t mul, int64_t lmax) {
  std::string text;
  for (int64_t l = 0; l <= lmax; ++l)
    text += (l ? "+" : "") + std::to_string(mul) + "x" + std::to_string(l) + (l % 2 ? "o" : "e");
  return text;
}

// The same irreps as a KLay block list: "[{l: 0, mul: 32}, {l: 1, mul: 32}]".
std::string irreps_blocks(int64_t mul, int64_t lmax) {
  std::string text = "[";
  for (int64_t l = 0; l <= lmax; ++l)
    text += (l ? ", " : "") + std::string("{l: ") + std::to_string(l) + ", mul: " + std::to_string(mul) + "}";
  return text + "]";
}

int64_t irreps_dim(int64_t mul, int64_t lmax) { return mul * (lmax + 1) * (lmax + 1); }

std::string radial_cutoff_text() {
  char text[16];
  std::snprintf(text, sizeof text, "%.1f", kRadialCutoff);
  return text;
}

// The synthetic structure and every per-atom / per-edge tensor a layer port may take, by name.
using Workload = std::map<std::string, at::Tensor>;

Workload make_workload(const Sizes& sizes) {
  at::manual_seed(0);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const int64_t n = sizes.atoms, e = n * sizes.edges_per_atom;
  const double box = std::cbrt(static_cast<double>(n) / 0.085);  // atoms/Å³ of copper
  Workload w;
  w["pos"] = at::rand({n, 3}, f64) * box;
  const at::Tensor senders = at::arange(n).repeat_interleave(sizes.edges_per_atom);
  const at::Tensor receivers = (senders + 1 + at::randint(n - 1, {e})) % n;  // never the sender itself
  w["edge_index"] = at::stack({senders, receivers});
  const at::Tensor direction = at::randn({e, 3}, f64);
  const at::Tensor wanted = direction / direction.norm(2, 1, true) * (1.0 + 3.0 * at::rand({e, 1}, f64));
  w["shift"] = wanted - (w["pos"].index_select(0, receivers) - w["pos"].index_select(0, senders));
  w["species"] = at::randint(kElements, {n});
  w["atomic_numbers"] = at::randint(1, 84, {n});
  w["node_attrs"] = at::one_hot(w["species"], kElements).to(at::kDouble);
  w["batch"] = at::zeros({n}, at::kLong);
  w["contributions"] = (at::rand({n}) > 0.8).to(at::kLong);  // 0 = contributing, 1 = padding
  w["per_atom_energy"] = at::randn({n, 1}, f64);
  w["scalars"] = at::randn({n, sizes.channels}, f64);
  w["features"] = at::randn({n, irreps_dim(sizes.channels, sizes.lmax)}, f64);

  // The edge features, by the runtime's own embedding layers.
  const std::string yaml =
      "model_inputs: {pos: '', edge_index: '', shift: ''}\n"
      "model_layers:\n"
      "  edges:\n"
      "    type: SphericalHarmonicEdgeAttrs\n"
      "    config: {lmax: " + std::to_string(sizes.lmax) + "}\n"
      "    inputs: {pos: model_inputs.pos, edge_index: model_inputs.edge_index, shift: model_inputs.shift}\n"
      "    output: {0: edge_vec, 1: edge_lengths, 2: edge_sh}\n"
      "  radial:\n"
      "    type: RadialBasisEdgeEncoding\n"
      "    config: {r_max: " + radial_cutoff_text() + ", num_radial_basis: " + std::to_string(kRadialBasis) + "}\n"
      "    inputs: {edge_lengths: edge_lengths}\n"
      "model_outputs: {edge_vec: edge_vec, edge_lengths: edge_lengths, edge_sh: edge_sh, radial: radial}\n";
  const auto model = Model::load_string(yaml, "<workload edge features>", "");
  at::NoGradGuard no_grad;
  const std::vector<at::Tensor> edge = model->forward({w["pos"], w["edge_index"], w["shift"]});
  w["edge_vec"] = edge[0];
  w["edge_lengths"] = edge[1];
  w["edge_sh"] = edge[2];
  w["radial"] = edge[3];
  return w;
}

struct LayerBench {
  std::string type;     // the registered layer being measured
  std::string summary;  // its configuration, for the table
  std::string yaml;     // the whole model; its model inputs are named after workload tensors
  std::string weights = "";  // "" = the layer's initial parameters
  bool forward_needs_grad = false;
};

// A model of one layer named `layer`: `ports` maps each port to the workload tensor it takes
// (the model input of that name); several outputs are exposed under their port names.
std::string single_layer_yaml(const std::string& type, const std::string& config,
                              const std::vector<std::pair<std::string, std::string>>& ports,
                              const std::vector<std::string>& outputs = {}) {
  std::ostringstream yaml;
  yaml << "model_inputs: {";
  std::vector<std::string> declared;
  for (const auto& [port, tensor] : ports) {
    if (std::find(declared.begin(), declared.end(), tensor) != declared.end()) continue;
    yaml << (declared.empty() ? "" : ", ") << tensor << ": ''";
    declared.push_back(tensor);
  }
  yaml << "}\nmodel_layers:\n  layer:\n    type: " << type << "\n";
  if (!config.empty()) yaml << "    config: {" << config << "}\n";
  yaml << "    inputs: {";
  for (size_t i = 0; i < ports.size(); ++i)
    yaml << (i ? ", " : "") << ports[i].first << ": model_inputs." << ports[i].second;
  yaml << "}\n";
  if (outputs.size() > 1) {
    yaml << "    output: {";
    for (size_t i = 0; i < outputs.size(); ++i) yaml << (i ? ", " : "") << i << ": " << outputs[i];
    yaml << "}\nmodel_outputs: {";
    for (size_t i = 0; i < outputs.size(); ++i) yaml << (i ? ", " : "") << outputs[i] << ": " << outputs[i];
    yaml << "}\n";
  } else {
    yaml << "model_outputs: {out: layer}\n";
  }
  return yaml.str();
}

std::vector<LayerBench> layer_benches(const Sizes& s) {
  const std::string c = std::to_string(s.channels);
  const std::string lmax = std::to_string(s.lmax), rmax = radial_cutoff_text();
  const std::string nb = std::to_string(kRadialBasis), avg = std::to_string(s.edges_per_atom);
  const std::string hidden = irreps_text(s.channels, s.lmax), hidden_blocks = irreps_blocks(s.channels, s.lmax);
  // Attention keys and values carry per-edge weights (E x 11 paths x 32 x mul doubles each, 0.7 GB
  // at mul 8), so they are a quarter of the channels wide; the pooling layer uses the same.
  const int64_t attention_mul = std::max<int64_t>(1, s.channels / 4);
  const std::string attention = irreps_text(attention_mul, s.lmax);
  const std::string qk_blocks = irreps_blocks(attention_mul, s.lmax);
  const std::string node_attrs = std::to_string(kElements) + "x0e";
  const std::string edge_attrs = irreps_text(1, s.lmax);
  const std::vector<std::pair<std::string, std::string>> conv_ports = {
      {"x", "node_attrs"}, {"h", "features"}, {"edge_length_embeddings", "radial"},
      {"edge_sh", "edge_sh"}, {"edge_index", "edge_index"}};
  const std::string interaction_config = "irreps_in: '" + hidden + "', irreps_out: '" + hidden +
                                         "', node_attr_irreps: " + node_attrs + ", edge_attr_irreps: '" +
                                         edge_attrs + "', edge_embedding_irreps: " + nb + "x0e";
  const auto mace = [&](int correlation) {
    return LayerBench{"MACE_layer", "H=" + hidden + ", lmax " + lmax + ", correlation " + std::to_string(correlation),
                      single_layer_yaml("MACE_layer",
                                        "lmax: " + lmax + ", correlation: " + std::to_string(correlation) +
                                            ", num_elements: " + std::to_string(kElements) +
                                            ", hidden_irreps_block: " + hidden_blocks + ", input_block: " +
                                            hidden_blocks + ", num_radial_basis: " + nb +
                                            ", avg_num_neighbors: " + avg,
                                        {{"vectors", "edge_vec"}, {"node_feats", "features"},
                                         {"node_attrs", "node_attrs"}, {"edge_feats", "radial"},
                                         {"edge_index", "edge_index"}})};
  };
  const std::string conformance = KLAY_CONFORMANCE_DIR;

  std::vector<LayerBench> benches = {
      {"OneHotAtomEncoding", std::to_string(kElements) + " elements",
       single_layer_yaml("OneHotAtomEncoding", "num_elems: " + std::to_string(kElements), {{"x", "species"}})},
      {"BinaryAtomicNumberEncoding", "Z < 84",
       single_layer_yaml("BinaryAtomicNumberEncoding", "", {{"x", "atomic_numbers"}})},
      {"ElectronicConfigurationEncoding", "Z < 84, table from conformance weights",
       single_layer_yaml("ElectronicConfigurationEncoding", "", {{"x", "atomic_numbers"}}),
       conformance + "/layer_ElectronicConfigurationEncoding_0/weights.pth"},
      {"SphericalHarmonicEdgeAttrs", "lmax " + lmax + ", component",
       single_layer_yaml("SphericalHarmonicEdgeAttrs", "lmax: " + lmax,
                         {{"pos", "pos"}, {"edge_index", "edge_index"}, {"shift", "shift"}},
                         {"edge_vec", "edge_lengths", "edge_sh"})},
      {"RadialBasisEdgeEncoding", nb + " Bessel x polynomial cutoff, r_max " + rmax,
       single_layer_yaml("RadialBasisEdgeEncoding", "r_max: " + rmax + ", num_radial_basis: " + nb,
                         {{"edge_lengths", "edge_lengths"}})},
      {"BesselBasis", nb + " basis, r_max " + rmax,
       single_layer_yaml("BesselBasis", "r_max: " + rmax + ", num_radial_basis: " + nb, {{"x", "edge_lengths"}})},
      {"PolynomialCutoff", "p 6, r_max " + rmax,
       single_layer_yaml("PolynomialCutoff", "r_max: " + rmax, {{"x", "edge_lengths"}})},
      {"AtomwiseLinear", hidden + " -> same",
       single_layer_yaml("AtomwiseLinear", "irreps_in_block: " + hidden_blocks + ", irreps_out_block: " + hidden_blocks,
                         {{"h", "features"}})},
      {"GatedAtomwiseLinear", hidden + " -> same",
       single_layer_yaml("GatedAtomwiseLinear",
                         "irreps_in_block: " + hidden_blocks + ", irreps_out_block: " + hidden_blocks,
                         {{"h", "features"}})},
      {"AtomwiseSumIndex", "[N,1] -> 1 graph",
       single_layer_yaml("AtomwiseSumIndex", "", {{"src", "per_atom_energy"}, {"index", "batch"}})},
      {"KIMAPISumIndex", "[N,1], 80% contributing",
       single_layer_yaml("KIMAPISumIndex", "", {{"src", "per_atom_energy"}, {"index", "contributions"}})},
      {"AutogradForces", "forces of SH(lmax 1) + radial(" + nb + ") pair terms",
       "model_inputs: {pos: '', edge_index: '', shift: ''}\n"
       "model_layers:\n"
       "  edges:\n"
       "    type: SphericalHarmonicEdgeAttrs\n"
       "    config: {lmax: 1}\n"
       "    inputs: {pos: model_inputs.pos, edge_index: model_inputs.edge_index, shift: model_inputs.shift}\n"
       "    output: {0: vec, 1: lengths, 2: sh}\n"
       "  radial:\n"
       "    type: RadialBasisEdgeEncoding\n"
       "    config: {r_max: " + rmax + ", num_radial_basis: " + nb + "}\n"
       "    inputs: {edge_lengths: lengths}\n"
       "  layer:\n"
       "    type: AutogradForces\n"
       "    inputs: {energy: radial, pos: model_inputs.pos}\n"
       "model_outputs: {forces: layer}\n",
       "", /*forward_needs_grad=*/true},
      {"InteractionBlock", hidden + " -> same, sh lmax " + lmax,
       single_layer_yaml("InteractionBlock", interaction_config + ", avg_num_neighbors: " + avg, conv_ports)},
      {"ConvNetLayer", "in " + hidden + ", lmax " + lmax + ", " + c + " features, gate",
       single_layer_yaml("ConvNetLayer",
                         "hidden_irreps_lmax: " + lmax + ", edge_sh_lmax: " + lmax + ", conv_feature_size: " + c +
                             ", input_block: " + hidden_blocks + ", node_attr_block: [{l: 0, mul: " +
                             std::to_string(kElements) + "}], avg_neigh: " + avg + ", num_radial_basis: " + nb,
                         conv_ports)},
      mace(2),
      mace(3),
      {"E3Attention", "in " + hidden + ", query/key/value " + attention,
       single_layer_yaml("E3Attention",
                         "irreps_input_block: " + hidden_blocks + ", irreps_query_block: " + qk_blocks +
                             ", irreps_key_block: " + qk_blocks + ", irreps_value_block: " + qk_blocks +
                             ", edge_sh_lmax: " + lmax + ", number_of_basis: " + nb + ", max_radius: " + rmax,
                         {{"f", "features"}, {"edge_index", "edge_index"}, {"edge_lengths", "edge_lengths"},
                          {"edge_sh", "edge_sh"}, {"edge_length_embeddings", "radial"}})},
      {"E3AttentionPooling", "in " + hidden + ", query/key " + attention,
       single_layer_yaml("E3AttentionPooling",
                         "irreps_input_block: " + hidden_blocks + ", irreps_query_block: " + qk_blocks +
                             ", irreps_key_block: " + qk_blocks,
                         {{"f", "features"}})},
      {"RadialAttention", nb + " frequencies, 2 hidden x " + c,
       single_layer_yaml("RadialAttention", "n_input: " + nb + ", n_hidden_layers: 2, hidden_layer_width: " + c,
                         {{"r_ijs", "edge_lengths"}})},
      {"AttentionInteractionBlock", hidden + " -> same, sh lmax " + lmax,
       single_layer_yaml("AttentionInteractionBlock", interaction_config,
                         {{"x", "node_attrs"}, {"h", "features"}, {"edge_length_embeddings", "radial"},
                          {"edge_sh", "edge_sh"}, {"edge_index", "edge_index"}, {"r_ijs", "edge_lengths"}})},
      {"EGCL", "hidden " + c + ", 1 hidden layer",
       single_layer_yaml("EGCL", "input_dim: " + c + ", hidden_dim: " + c,
                         {{"h", "scalars"}, {"coords", "pos"}, {"edge_index", "edge_index"},
                          {"shift_vectors", "shift"}, {"batch", "batch"}},
                         {"h", "coords"})},
      {"ArbitraryModule", "torch.nn.Linear(" + c + ", " + c + ")",
       single_layer_yaml("ArbitraryModule", "target: torch.nn.Linear, args: [" + c + ", " + c + "]",
                         {{"0", "scalars"}})},
  };
  return benches;
}

struct Row {
  std::string layer, summary;
  Timing forward{NAN, 0}, forward_backward{NAN, 0};
  std::string note = "";
};

at::Tensor floating_output_sum(const std::vector<at::Tensor>& outputs) {
  at::Tensor total;
  for (const at::Tensor& t : outputs)
    if (at::isFloatingType(t.scalar_type()) && t.requires_grad()) total = total.defined() ? total + t.sum() : t.sum();
  return total;
}

Row run_bench(const LayerBench& bench, const Workload& workload, const Options& options) {
  Row row{bench.type, bench.summary};
  const auto model = Model::load_string(bench.yaml, "<bench " + bench.type + ">", bench.weights);
  std::vector<at::Tensor> inputs, differentiable;
  for (const std::string& name : model->input_names()) {
    const auto found = workload.find(name);
    if (found == workload.end()) throw Error("the benchmark has no workload tensor '" + name + "'");
    at::Tensor input = found->second;
    if (at::isFloatingType(input.scalar_type())) {
      input = input.detach().clone().requires_grad_(true);
      differentiable.push_back(input);
    }
    inputs.push_back(input);
  }
  std::vector<at::Tensor> plain;  // the same values without autograd, for inference
  for (const at::Tensor& input : inputs) plain.push_back(input.detach());

  row.forward = time_median(
      [&] {
        if (bench.forward_needs_grad) {
          model->forward(inputs);
        } else {
          at::NoGradGuard no_grad;
          model->forward(plain);
        }
      },
      options);

  // Backward only where a floating output depends on a floating input.
  const at::Tensor probe = floating_output_sum(model->forward(inputs));
  if (!probe.defined() || differentiable.empty()) {
    row.note = "no floating input to differentiate";
    return row;
  }
  row.forward_backward = time_median(
      [&] {
        const at::Tensor loss = floating_output_sum(model->forward(inputs));
        torch::autograd::grad({loss}, differentiable, {}, /*retain_graph=*/false, /*create_graph=*/false,
                              /*allow_unused=*/true);
      },
      options);
  return row;
}

void print_table(const std::vector<Row>& rows) {
  size_t layer_width = 5, summary_width = 6;
  for (const Row& row : rows) {
    layer_width = std::max(layer_width, row.layer.size());
    summary_width = std::max(summary_width, row.summary.size());
  }
  const int lw = static_cast<int>(layer_width), sw = static_cast<int>(summary_width);
  std::printf("%-*s  %-*s  %11s %3s  %11s %3s  %s\n", lw, "layer", sw, "config", "forward ms", "n", "fwd+bwd ms",
              "n", "note");
  std::printf("%s\n", std::string(layer_width + summary_width + 40, '-').c_str());
  const auto samples = [](const Timing& t) { return t.samples ? std::to_string(t.samples) : std::string("-"); };
  for (const Row& row : rows)
    std::printf("%-*s  %-*s  %11s %3s  %11s %3s  %s\n", lw, row.layer.c_str(), sw, row.summary.c_str(),
                format_ms(row.forward.median_ms).c_str(), samples(row.forward).c_str(),
                format_ms(row.forward_backward.median_ms).c_str(), samples(row.forward_backward).c_str(),
                row.note.c_str());
}

// The convolution products of the kernel tables: the hidden irreps to themselves (NequIP's
// InteractionBlock, MACE) and to both parities of every l (ConvNetLayer).
struct TableProduct {
  std::string target, layers;
  e3nn::TensorProduct tp;
};
std::vector<TableProduct> table_products(const Sizes& sizes) {
  const e3nn::Irreps hidden(irreps_text(sizes.channels, sizes.lmax));
  const e3nn::Irreps sh = e3nn::Irreps::spherical_harmonics(static_cast<int>(sizes.lmax));
  std::string all_parities;
  for (int64_t l = 0; l <= sizes.lmax; ++l) all_parities += (l ? "+" : "") + std::to_string(l) + "e+" + std::to_string(l) + "o";
  return {{"same", "InteractionBlock, MACE", convolution_tensor_product(hidden, sh, hidden)},
          {"both parities", "ConvNetLayer", convolution_tensor_product(hidden, sh, e3nn::Irreps(all_parities))}};
}

// The fused convolution kernel alone (src/kernels), what the convolution layers run over the edges:
// its FLOP rate against the matmul rate measured at start, and the composite ATen path it replaced.
void print_kernel_table(const Workload& w, const Sizes& sizes, const Options& options, double matmul_gflops) {
  const at::Tensor sender = w.at("edge_index")[1], receiver = w.at("edge_index")[0];
  const int64_t n = w.at("features").size(0), e = sender.size(0);
  std::printf("\nfused convolution kernel (gather, tensor product, per-edge weights, scatter; %ld edges), "
              "matmul %.1f GFLOP/s:\n", static_cast<long>(e), matmul_gflops);
  std::printf("%-58s %5s  %9s %7s %6s  %9s %7s %6s  %9s %9s %7s\n", "tensor product", "paths", "fw ms", "GFLOP/s",
              "%mm", "f+b ms", "GFLOP/s", "%mm", "ATen fw", "ATen f+b", "ATen/k");
  for (const auto& [target, layers, tp] : table_products(sizes)) {
    const std::string name = irreps_text(sizes.channels, sizes.lmax) + " x sh -> " + target + " (" + layers + ")";
    at::manual_seed(1);
    const at::Tensor weight = at::randn({e, tp->weight_numel()}, at::kDouble);
    auto forward = [&, tp = tp](bool fused) {
      kernels::set_fused_kernels_enabled(fused);
      at::NoGradGuard no_grad;
      kernels::convolution_scatter(*tp, w.at("features"), w.at("edge_sh"), weight, sender, receiver, n);
      kernels::set_fused_kernels_enabled(true);
    };
    auto forward_backward = [&, tp = tp](bool fused) {
      kernels::set_fused_kernels_enabled(fused);
      const at::Tensor x = w.at("features").detach().requires_grad_(), y = w.at("edge_sh").detach().requires_grad_(),
                       v = weight.detach().requires_grad_();
      const at::Tensor out = kernels::convolution_scatter(*tp, x, y, v, sender, receiver, n);
      torch::autograd::grad({out.sum()}, {x, y, v});
      kernels::set_fused_kernels_enabled(true);
    };
    const double fw = time_median([&] { forward(true); }, options).median_ms;
    const double fb = time_median([&] { forward_backward(true); }, options).median_ms;
    const double aten_fw = time_median([&] { forward(false); }, options).median_ms;
    const double aten_fb = time_median([&] { forward_backward(false); }, options).median_ms;
    const kernels::ConvolutionFlops flops = kernels::convolution_flops(*tp, e);
    const double fw_rate = flops.forward / (fw * 1e6), fb_rate = (flops.forward + flops.backward) / (fb * 1e6);
    std::printf("%-58s %5zu  %9s %7.1f %5.0f%%  %9s %7.1f %5.0f%%  %9s %9s %6.2fx\n", name.substr(0, 58).c_str(),
                tp->paths().size(), format_ms(fw).c_str(), fw_rate, 100 * fw_rate / matmul_gflops, format_ms(fb).c_str(),
                fb_rate, 100 * fb_rate / matmul_gflops, format_ms(aten_fw).c_str(), format_ms(aten_fb).c_str(),
                aten_fb / fb);
  }
  std::printf("# GFLOP/s: the arithmetic the kernel performs (non-zero 3j entries only; a multiply-add is 2)\n"
              "# per millisecond; %%mm: of the 1024x1024 float64 matmul rate above. f+b: forward and the\n"
              "# gradients with respect to node features, edge attributes and weights. ATen/k: composite\n"
              "# path (tp on gathered features + scatter_sum) time over the kernel's, forward+backward.\n");
}

// The convolution as the layers run it (radial_convolution_scatter): the radial MLP evaluated inside
// the fused kernel a block of edges at a time, so that the per-edge weights never go through
// memory; against the radial MLP kernel and the convolution kernel in turn (the weights
// materialised, as the table above reads them).
void print_radial_convolution_table(const Workload& w, const Sizes& sizes, const Options& options,
                                    double matmul_gflops) {
  const at::Tensor sender = w.at("edge_index")[1], receiver = w.at("edge_index")[0];
  const at::Tensor radial = w.at("radial");
  const int64_t n = w.at("features").size(0), e = sender.size(0);
  std::printf("\nradial MLP + convolution in one kernel (%ld edges), matmul %.1f GFLOP/s:\n", static_cast<long>(e),
              matmul_gflops);
  std::printf("%-38s %-14s  %9s %7s %6s  %9s %7s %6s  %9s %7s\n", "tensor product", "net", "fw ms", "GFLOP/s", "%mm",
              "f+b ms", "GFLOP/s", "%mm", "2 kernels", "2k/1k");
  for (const auto& [target, name, tp] : table_products(sizes)) {
    const std::vector<int64_t> net_sizes{kRadialBasis, 64, 64, tp->weight_numel()};
    at::manual_seed(1);
    const e3nn::FullyConnectedNet fc(net_sizes, "silu");  // the layers' default
    const auto forward = [&, tp = tp] {
      at::NoGradGuard no_grad;
      kernels::radial_convolution_scatter(*tp, *fc, radial, {}, {}, w.at("features"), w.at("edge_sh"), sender,
                                          receiver, n);
    };
    // MD's derivatives: the embeddings, node features and edge attributes (not the net's weights).
    const auto forward_backward = [&, tp = tp](bool one_kernel) {
      const at::Tensor x = w.at("features").detach().requires_grad_(), y = w.at("edge_sh").detach().requires_grad_(),
                       r = radial.detach().requires_grad_();
      const at::Tensor out =
          one_kernel ? kernels::radial_convolution_scatter(*tp, *fc, r, {}, {}, x, y, sender, receiver, n)
                     : kernels::convolution_scatter(*tp, x, y, kernels::radial_mlp(*fc, r), sender, receiver, n);
      torch::autograd::grad({out.sum()}, {x, y, r});
    };
    const double fw = time_median(forward, options).median_ms;
    const double fb = time_median([&] { forward_backward(true); }, options).median_ms;
    const double separate = time_median([&] { forward_backward(false); }, options).median_ms;
    const kernels::ConvolutionFlops conv = kernels::convolution_flops(*tp, e);
    double net_flops = 0;  // one evaluation of the net; its input gradient is as much again
    for (size_t k = 0; k + 1 < net_sizes.size(); ++k) net_flops += 2.0 * e * net_sizes[k] * net_sizes[k + 1];
    const double fw_rate = (conv.forward + net_flops) / (fw * 1e6);
    const double fb_rate = (conv.forward + conv.backward + 2 * net_flops) / (fb * 1e6);
    std::string net_text;
    for (int64_t h : net_sizes) net_text += (net_text.empty() ? "" : ",") + std::to_string(h);
    std::printf("%-38s %-14s  %9s %7.1f %5.0f%%  %9s %7.1f %5.0f%%  %9s %6.2fx\n", name.c_str(), net_text.c_str(),
                format_ms(fw).c_str(), fw_rate, 100 * fw_rate / matmul_gflops, format_ms(fb).c_str(), fb_rate,
                100 * fb_rate / matmul_gflops, format_ms(separate).c_str(), separate / fb);
  }
  std::printf("# GFLOP/s: the convolution's arithmetic as above plus the net's matmuls (once forward, once for\n"
              "# the input gradient; not the net the backward evaluates again for its block) per millisecond.\n"
              "# f+b: the gradients MD takes (radial basis, node features, edge attributes). 2 kernels: the\n"
              "# radial MLP kernel, then the convolution kernel on its weights; 2k/1k: its time over this one's.\n");
}

// The o3.Linear kernel (src/kernels/linear.cpp) against the module's composite forward, per atom
// features of `mul` channels for every l up to lmax (what the convolutions' linear_1/linear_2 map).
void print_linear_table(int64_t atoms, int64_t lmax, const Options& options) {
  std::printf("\no3.Linear kernel against the composite forward (%ld atoms, lmax %ld, same irreps in and out):\n",
              static_cast<long>(atoms), static_cast<long>(lmax));
  std::printf("%-24s  %9s %9s %7s  %9s %9s %7s\n", "irreps", "fw ms", "ATen fw", "ATen/k", "f+b ms", "ATen f+b",
              "ATen/k");
  for (int64_t mul : {2, 4, 8, 16, 32, 64}) {
    const e3nn::Irreps irreps(irreps_text(mul, lmax));
    at::manual_seed(1);
    const e3nn::Linear linear(irreps, irreps);
    const at::Tensor features = at::randn({atoms, irreps.dim()}, at::kDouble);
    auto forward = [&](bool fused) {
      kernels::set_fused_kernels_enabled(fused);
      at::NoGradGuard no_grad;
      kernels::linear(*linear, features);
      kernels::set_fused_kernels_enabled(true);
    };
    auto forward_backward = [&](bool fused) {
      kernels::set_fused_kernels_enabled(fused);
      const at::Tensor x = features.detach().requires_grad_();
      torch::autograd::grad({kernels::linear(*linear, x).sum()}, {x, linear->weight});
      kernels::set_fused_kernels_enabled(true);
    };
    const double fw = time_median([&] { forward(true); }, options).median_ms;
    const double aten_fw = time_median([&] { forward(false); }, options).median_ms;
    const double fb = time_median([&] { forward_backward(true); }, options).median_ms;
    const double aten_fb = time_median([&] { forward_backward(false); }, options).median_ms;
    std::printf("%-24s  %9s %9s %6.2fx  %9s %9s %6.2fx\n", irreps_text(mul, lmax).c_str(), format_ms(fw).c_str(),
                format_ms(aten_fw).c_str(), aten_fw / fw, format_ms(fb).c_str(), format_ms(aten_fb).c_str(),
                aten_fb / fb);
  }
  std::printf("# f+b: forward and the gradients with respect to the features and the weight. ATen/k: the\n"
              "# composite forward's time over the kernel's.\n");
}

// The radial MLP kernel (src/kernels/radial_mlp.cpp) against the composite FullyConnectedNet
// (KLAY_FUSED_KERNELS=0's path) on the edges' radial basis, the two called alternately in every
// round so both see the same load.
void print_radial_mlp_table(const Workload& w, const Sizes& sizes, const Options& options, double matmul_gflops) {
  const e3nn::Irreps hidden(irreps_text(sizes.channels, sizes.lmax));
  const int64_t width =
      convolution_tensor_product(hidden, e3nn::Irreps::spherical_harmonics(static_cast<int>(sizes.lmax)), hidden)
          ->weight_numel();
  struct Net {
    std::string name;
    std::vector<int64_t> sizes;
    std::string activation;
  };
  const std::vector<Net> nets = {{"MACE_layer", {kRadialBasis, 64, 64, 64, width}, "silu"},
                                 {"InteractionBlock", {kRadialBasis, 64, 64, width}, "ssp"}};
  std::printf("\nradial MLP kernel against the composite net (alternated), matmul %.1f GFLOP/s:\n", matmul_gflops);
  std::printf("%-32s %6s  %8s %8s %6s  %8s %8s %6s %7s %5s  %8s %8s %6s\n", "net", "edges", "fw ms", "ATen fw", "ATen/k",
              "d/dx ms", "ATen", "ATen/k", "GFLOP/s", "%mm", "d/dxW ms", "ATen", "ATen/k");
  // The workload's edges, and as many as a conformance case's 1,000 atoms have (overheads show).
  const int64_t all_edges = w.at("radial").size(0);
  for (const Net& net : nets)
    for (const int64_t e : {all_edges, std::min<int64_t>(all_edges, 2400)}) {
      const at::Tensor radial = w.at("radial").narrow(0, 0, e);
      at::manual_seed(2);
      e3nn::FullyConnectedNet fc(net.sizes, net.activation);
      std::vector<at::Tensor> weights = fc->parameters();
      // a gradient of the per-edge weights as the convolution kernel hands it back
      const at::Tensor grad_out = at::randn({e, net.sizes.back()}, at::kDouble);
      const auto run = [&](bool fused, bool wrt_x, bool wrt_weights) {
        kernels::set_fused_kernels_enabled(fused);
        for (at::Tensor& p : weights) p.requires_grad_(wrt_weights);
        const at::Tensor x = radial.detach().requires_grad_(wrt_x);
        if (!wrt_x && !wrt_weights) {
          at::NoGradGuard no_grad;
          kernels::radial_mlp(*fc, x);
        } else {
          std::vector<at::Tensor> wrt;
          if (wrt_x) wrt.push_back(x);
          if (wrt_weights) wrt.insert(wrt.end(), weights.begin(), weights.end());
          torch::autograd::grad({kernels::radial_mlp(*fc, x)}, wrt, {grad_out});
        }
        kernels::set_fused_kernels_enabled(true);
      };
      // kernel and composite: forward, d/d(input) (MD's forces), d/d(input, weights) (training)
      const std::vector<std::function<void()>> ways = {
          [&] { run(true, false, false); },  [&] { run(false, false, false); }, [&] { run(true, true, false); },
          [&] { run(false, true, false); }, [&] { run(true, true, true); },    [&] { run(false, true, true); }};
      std::vector<std::vector<double>> samples(ways.size());
      double round_ms = 0;
      for (int warmup = 0; warmup < (options.quick ? 0 : 2); ++warmup) {
        round_ms = 0;
        for (const auto& way : ways) round_ms += time_once_ms(way);
      }
      Options shared = options;
      shared.budget_s = options.budget_s * static_cast<double>(ways.size());
      for (int r = 0, rounds = repeats_for(round_ms, shared); r < rounds; ++r)
        for (size_t k = 0; k < ways.size(); ++k) samples[k].push_back(time_once_ms(ways[k]));
      std::vector<double> ms;
      for (const auto& s : samples) ms.push_back(median_ms(s));
      double layer_flops = 0;  // a multiply-add is 2
      for (size_t k = 0; k + 1 < net.sizes.size(); ++k) layer_flops += 2.0 * e * net.sizes[k] * net.sizes[k + 1];
      const double md_rate = 2 * layer_flops / (ms[2] * 1e6);
      std::string sizes_text;
      for (int64_t h : net.sizes) sizes_text += (sizes_text.empty() ? "" : ",") + std::to_string(h);
      std::printf("%-32s %6ld  %8s %8s %5.2fx  %8s %8s %5.2fx %7.1f %4.0f%%  %8s %8s %5.2fx\n",
                  (net.name + " [" + sizes_text + "] " + net.activation).substr(0, 32).c_str(), static_cast<long>(e),
                  format_ms(ms[0]).c_str(), format_ms(ms[1]).c_str(), ms[1] / ms[0], format_ms(ms[2]).c_str(), format_ms(ms[3]).c_str(),
                  ms[3] / ms[2], md_rate, 100 * md_rate / matmul_gflops, format_ms(ms[4]).c_str(),
                  format_ms(ms[5]).c_str(), ms[5] / ms[4]);
    }
  std::printf("# fw: inference; d/dx: forward with autograd and the gradient with respect to the radial basis\n"
              "# (what MD's forces take; GFLOP/s and %%mm: its matmuls' arithmetic per millisecond, against\n"
              "# the 1024x1024 float64 matmul rate above); d/dxW: also every weight (training).\n");
}

int run(int argc, char** argv) {
  const Options options = parse_options(
      argc, argv, "bench_layers: forward and forward+backward time of each implemented KLay layer (float64, CPU)");
  const double matmul_gflops = print_machine(options);
  // As pair_style klay does: freed memory stays mapped for the next call.
  std::printf("allocator:  freed memory kept for reuse (klay_keep_freed_memory: %s)\n",
              klay_keep_freed_memory() == 0 ? "on" : "not available");
  Sizes sizes = options.quick ? Sizes{40, 6, 4, 2} : Sizes{1000, 30, 32, 2};
  if (options.atoms > 0) sizes.atoms = options.atoms;
  const Workload workload = make_workload(sizes);
  std::printf("workload:   %ld atoms, %ld edges (%ld per atom, lengths 1-4 A), %ld channels, lmax %ld, float64\n",
              static_cast<long>(sizes.atoms), static_cast<long>(workload.at("edge_lengths").size(0)),
              static_cast<long>(sizes.edges_per_atom), static_cast<long>(sizes.channels),
              static_cast<long>(sizes.lmax));
  std::printf("forward:    inference (no autograd); fwd+bwd: forward with autograd + d(sum outputs)/d(floating inputs)\n\n");
  std::fflush(stdout);

  const std::vector<std::string> implemented = implemented_layer_types();
  const auto is_implemented = [&](const std::string& type) {
    return std::find(implemented.begin(), implemented.end(), type) != implemented.end();
  };
  std::vector<Row> rows;
  int failures = 0;
  const std::vector<LayerBench> benches = layer_benches(sizes);
  for (const LayerBench& bench : benches) {
    if (!options.filter.empty() && bench.type.find(options.filter) == std::string::npos) continue;
    if (!is_implemented(bench.type)) {
      rows.push_back({bench.type, bench.summary, {NAN, 0}, {NAN, 0}, "skipped: not implemented in the runtime"});
      continue;
    }
    try {
      rows.push_back(run_bench(bench, workload, options));
    } catch (const std::exception& e) {
      ++failures;
      std::string message = e.what();
      message = message.substr(0, message.find('\n'));
      rows.push_back({bench.type, bench.summary, {NAN, 0}, {NAN, 0}, "ERROR: " + message});
    }
    std::fprintf(stderr, "  %s (%s): %s / %s ms %s\n", bench.type.c_str(), bench.summary.c_str(),
                 format_ms(rows.back().forward.median_ms).c_str(),
                 format_ms(rows.back().forward_backward.median_ms).c_str(), rows.back().note.c_str());
  }
  // A registered implementation this table does not know yet is worth saying out loud.
  for (const std::string& type : implemented) {
    const bool known = std::any_of(benches.begin(), benches.end(), [&](const LayerBench& b) { return b.type == type; });
    if (!known && (options.filter.empty() || type.find(options.filter) != std::string::npos))
      rows.push_back({type, "", {NAN, 0}, {NAN, 0}, "no benchmark configuration for this layer"});
  }
  print_table(rows);
  if (options.filter.empty() || std::string("kernel").find(options.filter) != std::string::npos)
    print_kernel_table(workload, sizes, options, matmul_gflops);
  if (options.filter.empty() || std::string("kernel").find(options.filter) != std::string::npos)
    print_radial_convolution_table(workload, sizes, options, matmul_gflops);
  if (options.filter.empty() || std::string("linear").find(options.filter) != std::string::npos)
    print_linear_table(sizes.atoms, sizes.lmax, options);
  if (options.filter.empty() || std::string("radial_mlp").find(options.filter) != std::string::npos)
    print_radial_mlp_table(workload, sizes, options, matmul_gflops);
  return failures ? 1 : 0;
}

}  // namespace
}  // namespace klay::bench

int main(int argc, char** argv) { return klay::bench::run(argc, argv); }
