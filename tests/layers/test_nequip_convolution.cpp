// InteractionBlock and ConvNetLayer (docs/layers.md#interaction-block, #convnet-layer): state_dict
// shapes derived by hand, equivariance under rotations and inversion, autograd vs finite
// differences, config errors. Numbers against Python: layer_InteractionBlock_0,
// layer_ConvNetLayer_* and the NequIP model cases.
#include <gtest/gtest.h>

#include "conv_layer_testing.hpp"

namespace klay::testing {
namespace {

// new_model.yaml's first convolution (KLay's example model).
const char* kNewModelConv1 =
    "{hidden_irreps_lmax: 1, edge_sh_lmax: 1, conv_feature_size: 32, input_block: [{l: 0, mul: 32}], "
    "node_attr_block: [{l: 0, mul: 2}], avg_neigh: 1, num_radial_basis: 8}";

TEST(ConvNetLayer, NewModelShapesFromSpec) {
  auto layer = build_layer("ConvNetLayer", kNewModelConv1);
  auto shapes = state_shapes(*layer);
  const std::map<std::string, std::vector<int64_t>> expected{{"conv.linear_1.weight", {1024}},
                                                             {"conv.linear_1.bias", {0}},
                                                             {"conv.linear_1.output_mask", {32}},
                                                             {"conv.fc.layer0.weight", {8, 64}},
                                                             {"conv.fc.layer1.weight", {64, 64}},
                                                             {"conv.fc.layer2.weight", {64, 64}},
                                                             {"conv.tp.weight", {0}},
                                                             {"conv.tp.output_mask", {128}},
                                                             {"conv.linear_2.weight", {3072}},
                                                             {"conv.linear_2.bias", {0}},
                                                             {"conv.linear_2.output_mask", {160}},
                                                             {"conv.sc.weight", {4096}},
                                                             {"conv.sc.output_mask", {160}},
                                                             {"equivariant_nonlin.mul.weight", {0}},
                                                             {"equivariant_nonlin.mul.output_mask", {96}}};
  EXPECT_EQ(shapes, expected);
}

TEST(ConvNetLayer, SecondLayerSortsConvOutput) {
  // Input 32x0e+32x1o: conv_out = 96x0e + 32x1o + 32x1e (1o before 1e), output 32x0e+32x1e+32x1o.
  auto layer = build_layer("ConvNetLayer",
                           "{hidden_irreps_lmax: 1, edge_sh_lmax: 1, conv_feature_size: 32, input_block: "
                           "[{l: 0, mul: 32}, {l: 1, mul: 32}], "
                           "node_attr_block: [{l: 0, mul: 2}]}");
  auto shapes = state_shapes(*layer);
  EXPECT_EQ(shapes["conv.linear_2.output_mask"], (std::vector<int64_t>{96 + 96 + 96}));
  EXPECT_EQ(shapes["equivariant_nonlin.mul.output_mask"], (std::vector<int64_t>{192}));
  // FCTP(32x0e+32x1o, 2x0e → 96x0e+32x1o+32x1e): 32·2·96 + 32·2·32.
  EXPECT_EQ(shapes["conv.sc.weight"], (std::vector<int64_t>{32 * 2 * 96 + 32 * 2 * 32}));
}

TEST(ConvNetLayer, NormNonlinearityState) {
  auto layer = build_layer("ConvNetLayer",
                           "{hidden_irreps_lmax: 2, edge_sh_lmax: 2, conv_feature_size: 3, input_block: [{l: "
                           "0, mul: 3}, {l: 1, mul: 2}], "
                           "node_attr_block: [{l: 0, mul: 3}], parity: false, nonlinearity_type: norm, "
                           "nonlinearity_scalars: {e: ssp, o: tanh}}");
  auto shapes = state_shapes(*layer);
  // conv_out = 3x0e+3x1e+3x2e (dim 27).
  EXPECT_EQ(shapes["equivariant_nonlin.scalar_multiplier.output_mask"], (std::vector<int64_t>{27}));
  EXPECT_EQ(shapes["equivariant_nonlin.norm.tp.output_mask"], (std::vector<int64_t>{9}));
  EXPECT_EQ(shapes["conv.linear_2.output_mask"], (std::vector<int64_t>{27}));
}

struct ConvCase {
  std::string type, config;
  e3nn::Irreps attrs, irreps_in, irreps_out;
  int sh_lmax;
  int64_t n_basis;
};

// Test names show the case's layer and irreps instead of its bytes.
void PrintTo(const ConvCase& c, std::ostream* os) {
  *os << c.type << " " << c.irreps_in.to_string() << " -> " << c.irreps_out.to_string();
}

at::Tensor run_conv(Layer& layer, const ConvCase& c, const at::Tensor& pos, const at::Tensor& x,
                    const at::Tensor& h) {
  const at::Tensor edge_index = small_graph_edges();
  const EdgeInputs edges = edge_inputs(pos, edge_index, c.sh_lmax, c.n_basis);
  return call_tensor(layer, {x, h, edges.embeddings, edges.sh, edge_index});
}

class ConvolutionEquivariance : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvolutionEquivariance, RotationsAndInversion) {
  const ConvCase& c = GetParam();
  auto layer = build_layer(c.type, c.config);
  randomize_parameters(*layer, 17);
  at::manual_seed(2);
  const at::Tensor pos = at::randn({5, 3}, f64()) * 1.2;
  const at::Tensor x = at::randn({5, c.attrs.dim()}, f64());
  const at::Tensor h = at::randn({5, c.irreps_in.dim()}, f64());
  const at::Tensor out = run_conv(*layer, c, pos, x, h);
  ASSERT_EQ(out.size(1), c.irreps_out.dim());
  const at::Tensor rotation = random_rotation(8);
  for (bool inversion : {false, true}) {
    const at::Tensor moved = run_conv(*layer, c, at::matmul(pos, rotation.t()) * (inversion ? -1.0 : 1.0), x,
                                      rotate_features(h, c.irreps_in, rotation, inversion));
    const at::Tensor expected = rotate_features(out, c.irreps_out, rotation, inversion);
    EXPECT_LE(max_abs(moved - expected), 1e-12 * max_abs(expected)) << "inversion " << inversion;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layers, ConvolutionEquivariance,
    ::testing::Values(
        ConvCase{"InteractionBlock",
                 "{irreps_in: 3x0e+2x1o+1x2e, irreps_out: 2x0e+1x1o+2x1e+1x2o, node_attr_irreps: 2x0e, "
                 "edge_attr_irreps: 1x0e+1x1o+1x2e, edge_embedding_irreps: 4x0e, avg_num_neighbors: 3.5}",
                 e3nn::Irreps("2x0e"), e3nn::Irreps("3x0e+2x1o+1x2e"), e3nn::Irreps("2x0e+1x1o+2x1e+1x2o"), 2,
                 4},
        // Gate: scalars 2x0e (silu), gated 2x1e+2x1o behind 0e gates.
        ConvCase{"ConvNetLayer",
                 "{hidden_irreps_lmax: 1, edge_sh_lmax: 1, conv_feature_size: 2, input_block: [{l: 0, mul: "
                 "2}, {l: 1, "
                 "mul: 1}], node_attr_block: [{l: 0, mul: 2}], avg_neigh: 2, num_radial_basis: 3, "
                 "radial_network_hidden_dim: 5, radial_network_layers: 1}",
                 e3nn::Irreps("2x0e"), e3nn::Irreps("2x0e+1x1o"), e3nn::Irreps("2x0e+2x1e+2x1o"), 1, 3},
        // Odd scalars present (tanh), gates 0e, lmax 2 hidden.
        ConvCase{"ConvNetLayer",
                 "{hidden_irreps_lmax: 2, edge_sh_lmax: 2, conv_feature_size: 2, input_block: [{l: 0, mul: "
                 "1}, {l: 0, "
                 "mul: 1, p: o}, {l: 1, mul: 1}], node_attr_block: [{l: 0, mul: 1}], num_radial_basis: 3, "
                 "radial_network_hidden_dim: 4, radial_network_layers: 1}",
                 e3nn::Irreps("1x0e"), e3nn::Irreps("1x0e+1x0o+1x1o"),
                 e3nn::Irreps("2x0e+2x0o+2x1e+2x2e+2x1o+2x2o"), 2, 3},
        // l = 2 inputs: 2e x 2e, 1o x 2e and 2e x 1o paths into every output up to l = 2.
        ConvCase{"InteractionBlock",
                 "{irreps_in: 2x0e+2x1o+2x2e, irreps_out: 2x0e+2x1o+2x1e+2x2o+2x2e, node_attr_irreps: 1x0e, "
                 "edge_attr_irreps: 1x0e+1x1o+1x2e, edge_embedding_irreps: 3x0e}",
                 e3nn::Irreps("1x0e"), e3nn::Irreps("2x0e+2x1o+2x2e"), e3nn::Irreps("2x0e+2x1o+2x1e+2x2o+2x2e"), 2, 3},
        // The second convolution of examples/si: its input is the first one's output (scalars, then
        // the gated irreps with even parity first: 0e, 2e, 1o), and so is its own output's order.
        ConvCase{"ConvNetLayer",
                 "{hidden_irreps_lmax: 2, edge_sh_lmax: 2, conv_feature_size: 2, input_block: [{l: 0, mul: 2}, "
                 "{l: 2, mul: 2, p: e}, {l: 1, mul: 2, p: o}], node_attr_block: [{l: 0, mul: 1}], avg_neigh: 4.5, "
                 "num_radial_basis: 3, radial_network_hidden_dim: 4, radial_network_layers: 2}",
                 e3nn::Irreps("1x0e"), e3nn::Irreps("2x0e+2x2e+2x1o"), e3nn::Irreps("2x0e+2x1e+2x2e+2x1o+2x2o"), 2,
                 3},
        // Norm nonlinearity without parity.
        ConvCase{"ConvNetLayer",
                 "{hidden_irreps_lmax: 2, edge_sh_lmax: 2, conv_feature_size: 2, input_block: [{l: 0, mul: "
                 "2}, {l: 1, "
                 "mul: 1}], node_attr_block: [{l: 0, mul: 2}], parity: false, nonlinearity_type: norm, "
                 "num_radial_basis: 3, radial_network_hidden_dim: 4, radial_network_layers: 2}",
                 e3nn::Irreps("2x0e"), e3nn::Irreps("2x0e+1x1o"), e3nn::Irreps("2x0e+2x1e+2x2e"), 2, 3}),
    [](const ::testing::TestParamInfo<ConvCase>& info) { return info.param.type + "_" + std::to_string(info.index); });

TEST(ConvNetLayer, AutogradMatchesCentralDifferences) {
  const ConvCase c{
      "ConvNetLayer",
      "{hidden_irreps_lmax: 1, edge_sh_lmax: 1, conv_feature_size: 2, input_block: [{l: 0, mul: 2}, {l: 1, "
      "mul: 1}], node_attr_block: [{l: 0, mul: 1}], num_radial_basis: 3, radial_network_hidden_dim: 4, "
      "radial_network_layers: 1}",
      e3nn::Irreps("1x0e"),
      e3nn::Irreps("2x0e+1x1o"),
      e3nn::Irreps("2x0e+2x1e+2x1o"),
      1,
      3};
  auto layer = build_layer(c.type, c.config);
  randomize_parameters(*layer, 23);
  at::manual_seed(3);
  const at::Tensor pos = at::randn({5, 3}, f64()) * 1.2;
  const at::Tensor x = at::randn({5, 1}, f64());
  const at::Tensor h = at::randn({5, 5}, f64());
  auto objective = [&](const at::Tensor& p, const at::Tensor& features) {
    return run_conv(*layer, c, p, x, features).pow(2).sum();
  };
  const at::Tensor pos_var = pos.clone().requires_grad_(true), h_var = h.clone().requires_grad_(true);
  const auto grads = torch::autograd::grad({objective(pos_var, h_var)}, {pos_var, h_var});
  const at::Tensor numerics[2] = {
      central_differences([&](const at::Tensor& p) { return objective(p, h); }, pos),
      central_differences([&](const at::Tensor& features) { return objective(pos, features); }, h)};
  for (int which = 0; which < 2; ++which) {
    const at::Tensor& numeric = numerics[which];
    EXPECT_LE(max_abs(grads[which] - numeric), 1e-7 * std::max(1.0, max_abs(numeric))) << "input " << which;
  }
}

// Readers of the activated scalars only (an energy readout): the restricted layer computes them
// exactly, with the same derivatives for inputs and parameters, and zeros in the gated columns.
TEST(ConvNetLayer, RestrictedToItsScalarsComputesThemExactly) {
  const ConvCase c{"ConvNetLayer",
                   "{hidden_irreps_lmax: 2, edge_sh_lmax: 2, conv_feature_size: 3, input_block: [{l: 0, mul: 3}, "
                   "{l: 2, mul: 3, p: e}, {l: 1, mul: 3, p: o}], node_attr_block: [{l: 0, mul: 1}], "
                   "num_radial_basis: 3, radial_network_hidden_dim: 4, radial_network_layers: 2}",
                   e3nn::Irreps("1x0e"),
                   e3nn::Irreps("3x0e+3x2e+3x1o"),
                   e3nn::Irreps("3x0e+3x1e+3x2e+3x1o+3x2o"),
                   2,
                   3};
  auto layer = build_layer(c.type, c.config);
  randomize_parameters(*layer, 29);
  EXPECT_EQ(layer->restricted_to({0, 3}), nullptr) << "column 3 is gated";
  const std::shared_ptr<Layer> scalars = layer->restricted_to({0, 2});
  ASSERT_NE(scalars, nullptr);

  at::manual_seed(6);
  const at::Tensor pos = (at::randn({5, 3}, f64()) * 1.2).requires_grad_(true);
  const at::Tensor x = at::randn({5, 1}, f64());
  const at::Tensor h = at::randn({5, c.irreps_in.dim()}, f64()).requires_grad_(true);
  const at::Tensor full = run_conv(*layer, c, pos, x, h);
  const at::Tensor part = run_conv(*scalars, c, pos, x, h);
  ASSERT_EQ(part.sizes(), full.sizes());
  EXPECT_LE(max_abs(part.narrow(1, 0, 3) - full.narrow(1, 0, 3)), 1e-14 * max_abs(full.narrow(1, 0, 3)));
  EXPECT_EQ(max_abs(part.narrow(1, 3, full.size(1) - 3)), 0.0);

  std::vector<at::Tensor> wrt{pos, h};
  for (const at::Tensor& p : layer->parameters()) wrt.push_back(p);
  const at::Tensor probe = at::randn({5, 3}, f64());
  const auto expected = torch::autograd::grad({(full.narrow(1, 0, 3) * probe).sum()}, wrt, {}, {}, false, true);
  const auto got = torch::autograd::grad({(part.narrow(1, 0, 3) * probe).sum()}, wrt, {}, {}, false, true);
  for (size_t k = 0; k < wrt.size(); ++k) {
    ASSERT_TRUE(expected[k].defined()) << k;
    const at::Tensor g = got[k].defined() ? got[k] : at::zeros_like(expected[k]);
    EXPECT_LE(max_abs(g - expected[k]), 1e-13 * std::max(1e-300, max_abs(expected[k]))) << "gradient " << k;
  }
}

TEST(ConvNetLayer, ConfigErrors) {
  const std::string common =
      "hidden_irreps_lmax: 1, edge_sh_lmax: 1, conv_feature_size: 2, node_attr_block: [{l: 0, mul: 1}]";
  const std::string base = common + ", input_block: [{l: 0, mul: 2}]";
  EXPECT_EQ(build_error("ConvNetLayer", "{" + base + "}"), "");
  EXPECT_NE(build_error("ConvNetLayer", "{" + base + ", nonlinearity_type: relu}").find("gate or norm"),
            std::string::npos);
  EXPECT_NE(build_error("ConvNetLayer", "{" + base + ", nonlinearity_scalars: {e: relu, o: tanh}}").find("relu"),
            std::string::npos);
  EXPECT_NE(build_error("ConvNetLayer", "{" + common + ", input_block: [{l: 0}]}").find("block without 'mul'"),
            std::string::npos);
  EXPECT_NE(build_error("ConvNetLayer", "{" + common + ", input_block: [{l: 0, mul: 2, p: x}]}")
                .find("'p' must be one of"),
            std::string::npos);
  EXPECT_NE(build_error("ConvNetLayer", "{" + base + ", avg_neighbours: 3}").find("did you mean 'avg_neigh'"),
            std::string::npos);
  // Integer bounds, reported at the value.
  EXPECT_NE(build_error("ConvNetLayer", "{" + base + ", radial_network_hidden_dim: 0}")
                .find("layer 'layer', config 'radial_network_hidden_dim': must be at least 1, got 0"),
            std::string::npos);
  const std::string negative_lmax = build_error(
      "ConvNetLayer",
      "{hidden_irreps_lmax: -1, edge_sh_lmax: 1, conv_feature_size: 2, input_block: [{l: 0, mul: 2}], "
      "node_attr_block: [{l: 0, mul: 1}]}");
  EXPECT_EQ(negative_lmax.rfind("<test>:1:30: ", 0), 0u) << negative_lmax;
  EXPECT_NE(negative_lmax.find("config 'hidden_irreps_lmax': must be at least 0, got -1"), std::string::npos)
      << negative_lmax;
  // Only odd scalars are reachable (0o ⊗ 0e) and silu has no parity: e3nn's Activation refuses it.
  EXPECT_NE(build_error("ConvNetLayer",
                        "{hidden_irreps_lmax: 0, edge_sh_lmax: 1, conv_feature_size: 2, "
                        "input_block: [{l: 0, mul: 1, p: o}], node_attr_block: [{l: 0, mul: 1}], "
                        "nonlinearity_scalars: {e: silu, o: silu}}")
                .find("neither even nor odd"),
            std::string::npos);
}

// Irreps block errors point at the part of the list that is wrong (the `p` value, the unknown
// key, the block without `mul`), not at the list. The config text starts at column 9.
TEST(ConvNetLayer, IrrepsBlockErrorsPointAtTheWrongPart) {
  const std::string common = "{hidden_irreps_lmax: 1, edge_sh_lmax: 1, conv_feature_size: 2, "
                             "node_attr_block: [{l: 0, mul: 1}], input_block: ";
  auto column_of = [&](const std::string& yaml, const std::string& part) {
    return "<test>:1:" + std::to_string(yaml.find(part) + 9) + ": ";
  };
  for (const auto& [blocks, part] : std::vector<std::pair<std::string, std::string>>{
           {"[{l: 0, mul: 2, p: x}]}", "x}"}, {"[{l: 0, mul: 2, q: e}]}", "q:"}, {"[{l: 0}]}", "{l: 0}]"}}) {
    const std::string yaml = common + blocks;
    const std::string error = build_error("ConvNetLayer", yaml);
    EXPECT_EQ(error.rfind(column_of(yaml, part), 0), 0u) << error;
  }
}

TEST(InteractionBlock, ConfigErrors) {
  const std::string common = "irreps_out: 2x0e, node_attr_irreps: 1x0e, edge_attr_irreps: 1x0e+1x1o";
  const std::string base = common + ", irreps_in: 2x0e";
  EXPECT_EQ(build_error("InteractionBlock", "{" + base + ", edge_embedding_irreps: 3x0e}"), "");
  EXPECT_NE(build_error("InteractionBlock", "{" + base + ", edge_embedding_irreps: 3x1o}").find("scalars"),
            std::string::npos);
  EXPECT_NE(build_error("InteractionBlock", "{" + common + ", edge_embedding_irreps: 3x0e, irreps_in: 2xx0e}")
                .find("irreps_in"),
            std::string::npos);
  EXPECT_NE(build_error("InteractionBlock",
                        "{" + base + ", edge_embedding_irreps: 3x0e, nonlinearity_scalars: {e: tanh}}")
                .find("tanh"),
            std::string::npos);
}

TEST(InteractionBlock, IrrepsAsBlocksEqualIrrepsAsStrings) {
  auto from_text = build_layer("InteractionBlock",
                               "{irreps_in: 2x0e+1x1o, irreps_out: 1x0e+1x1o, node_attr_irreps: 1x0e, "
                               "edge_attr_irreps: 1x0e+1x1o, edge_embedding_irreps: 3x0e}");
  auto from_blocks = build_layer(
      "InteractionBlock",
      "{irreps_in: [{l: 0, mul: 2}, {l: 1, mul: 1}], irreps_out: [{l: 0, mul: 1}, {l: 1, mul: 1}], "
      "node_attr_irreps: [{l: 0, mul: 1}], edge_attr_irreps: [{l: 0, mul: 1}, {l: 1, mul: 1}], "
      "edge_embedding_irreps: [{l: 0, mul: 3}]}");
  EXPECT_EQ(state_shapes(*from_text), state_shapes(*from_blocks));
}

}  // namespace
}  // namespace klay::testing
