// MACE_layer (docs/layers.md#mace-layer): state_dict shapes derived by hand, rotation/inversion
// equivariance, the MACE message direction (docs/layers.md#conventions), autograd vs central finite
// differences and config errors (docs/layers.md#quirk-mace-hidden-mul). Numbers against Python:
// layer_MACE_layer_*, model_mace_model_* and staged_mace_staged2_si8 in the runtime conformance
// test.
#include <gtest/gtest.h>

#include <cctype>
#include <string>

#include <torch/csrc/autograd/autograd.h>

#include "conv_layer_testing.hpp"

namespace klay::testing {
namespace {

// mace_model.yaml's conv1, whose full state the spec lists.
const char* kMaceModelConv1 =
    "{lmax: 1, correlation: 2, num_elements: 2, hidden_irreps_block: [{l: 0, mul: 32}, {l: 1, mul: 32}], "
    "input_block: [{l: 0, mul: 32}], node_attr_block: [{l: 0, mul: 2}]}";

TEST(MaceLayer, MaceModelShapesFromSpec) {
  auto layer = build_layer("MACE_layer", kMaceModelConv1);
  const std::map<std::string, std::vector<int64_t>> expected{
      {"interaction.linear_up.weight", {1024}},
      {"interaction.linear_up.bias", {0}},
      {"interaction.linear_up.output_mask", {32}},
      {"interaction.conv_tp.weight", {0}},
      {"interaction.conv_tp.output_mask", {128}},
      {"interaction.conv_tp_weights.layer0.weight", {8, 64}},
      {"interaction.conv_tp_weights.layer1.weight", {64, 64}},
      {"interaction.conv_tp_weights.layer2.weight", {64, 64}},
      {"interaction.conv_tp_weights.layer3.weight", {64, 64}},
      {"interaction.linear.weight", {2048}},
      {"interaction.linear.bias", {0}},
      {"interaction.linear.output_mask", {128}},
      {"interaction.skip_tp.weight", {2048}},
      {"interaction.skip_tp.output_mask", {128}},
      {"product.symmetric_contractions.contractions.0.U_matrix_1", {4, 1}},
      {"product.symmetric_contractions.contractions.0.U_matrix_2", {4, 4, 2}},
      {"product.symmetric_contractions.contractions.0.weights_max", {2, 2, 32}},
      {"product.symmetric_contractions.contractions.0.weights.0", {2, 1, 32}},
      {"product.symmetric_contractions.contractions.1.U_matrix_1", {3, 4, 1}},
      {"product.symmetric_contractions.contractions.1.U_matrix_2", {3, 4, 4, 2}},
      {"product.symmetric_contractions.contractions.1.weights_max", {2, 2, 32}},
      {"product.symmetric_contractions.contractions.1.weights.0", {2, 1, 32}},
      {"product.linear.weight", {2048}},
      {"product.linear.bias", {0}},
      {"product.linear.output_mask", {128}}};
  EXPECT_EQ(state_shapes(*layer), expected);
}

TEST(MaceLayer, ContractionParameterCountsFromSpec) {
  // P_ν for lmax = 2 (spec): 0e → 1, 3, 11; 1o → 1, 4, 21; 2e → 1, 4, 23. Node attrs default to 3x0e.
  auto layer = build_layer("MACE_layer",
                           "{lmax: 2, correlation: 3, num_elements: 3, hidden_irreps_block: [{l: 0, mul: 3}, "
                           "{l: 1, mul: 3}, {l: 2, mul: 3}], input_block: [{l: 0, mul: 3}, {l: 1, mul: 3}]}");
  auto shapes = state_shapes(*layer);
  const std::string prefix = "product.symmetric_contractions.contractions.";
  EXPECT_EQ(shapes[prefix + "0.weights_max"], (std::vector<int64_t>{3, 11, 3}));
  EXPECT_EQ(shapes[prefix + "0.weights.0"], (std::vector<int64_t>{3, 3, 3}));
  EXPECT_EQ(shapes[prefix + "0.weights.1"], (std::vector<int64_t>{3, 1, 3}));
  EXPECT_EQ(shapes[prefix + "1.U_matrix_3"], (std::vector<int64_t>{3, 9, 9, 9, 21}));
  EXPECT_EQ(shapes[prefix + "2.U_matrix_2"], (std::vector<int64_t>{5, 9, 9, 4}));
  EXPECT_EQ(shapes[prefix + "2.weights_max"], (std::vector<int64_t>{3, 23, 3}));
  // The radial MLP sizes are fixed by mace-layer; num_radial_basis defaults to 8.
  EXPECT_EQ(shapes["interaction.conv_tp_weights.layer0.weight"], (std::vector<int64_t>{8, 64}));
  // FCTP(3x0e+3x1o, 3x0e → 3x0e+3x1o+3x2e): 3·3·3 + 3·3·3.
  EXPECT_EQ(shapes["interaction.skip_tp.weight"], (std::vector<int64_t>{54}));
}

struct MaceCase {
  std::string config;
  e3nn::Irreps irreps_in, irreps_out;
  int64_t n_elements, n_radial;
};

// Test names show the case's irreps instead of its bytes.
void PrintTo(const MaceCase& c, std::ostream* os) {
  *os << c.irreps_in.to_string() << " -> " << c.irreps_out.to_string();
}

// "2x0e_1x1o_to_2x0e_2x1o": a test name may hold only letters, digits and underscores.
std::string mace_case_name(const ::testing::TestParamInfo<MaceCase>& info) {
  std::string name = info.param.irreps_in.to_string() + "_to_" + info.param.irreps_out.to_string();
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

const MaceCase kSmallCase{"{lmax: 1, correlation: 2, num_elements: 2, hidden_irreps_block: [{l: 0, mul: 2}, "
                          "{l: 1, mul: 2}], input_block: [{l: 0, mul: 2}, {l: 1, mul: 1}], num_radial_basis: 3, "
                          "avg_num_neighbors: 2.5}",
                          e3nn::Irreps("2x0e+1x1o"), e3nn::Irreps("2x0e+2x1o"), 2, 3};

struct MaceInputs {
  at::Tensor pos, node_feats, node_attrs, edge_index;
};

MaceInputs random_inputs(const MaceCase& c, uint64_t seed) {
  at::manual_seed(seed);
  MaceInputs in;
  in.pos = at::randn({5, 3}, f64()) * 1.2;
  in.node_feats = at::randn({5, c.irreps_in.dim()}, f64());
  in.node_attrs = at::one_hot(at::tensor({0, 1, 1, 0, 1}, at::kLong), c.n_elements).to(at::kDouble);
  in.edge_index = small_graph_edges();
  return in;
}

at::Tensor run_mace(Layer& layer, const MaceCase& c, const at::Tensor& pos, const at::Tensor& node_feats,
                    const at::Tensor& node_attrs, const at::Tensor& edge_index) {
  const at::Tensor vectors = pos.index_select(0, edge_index[1]) - pos.index_select(0, edge_index[0]);
  const at::Tensor r = vectors.pow(2).sum(1, true).sqrt();
  const at::Tensor edge_feats = at::cos(r * at::arange(1, c.n_radial + 1, f64())) * at::exp(-r);
  return call_tensor(layer, {vectors, node_feats, node_attrs, edge_feats, edge_index});
}

class MaceEquivariance : public ::testing::TestWithParam<MaceCase> {};

TEST_P(MaceEquivariance, RotationsAndInversion) {
  const MaceCase& c = GetParam();
  auto layer = build_layer("MACE_layer", c.config);
  randomize_parameters(*layer, 31);
  const MaceInputs in = random_inputs(c, 4);
  const at::Tensor out = run_mace(*layer, c, in.pos, in.node_feats, in.node_attrs, in.edge_index);
  ASSERT_EQ(out.size(1), c.irreps_out.dim());
  ASSERT_GT(max_abs(out), 1e-8);  // not trivially zero
  const at::Tensor rotation = random_rotation(9);
  for (bool inversion : {false, true}) {
    const at::Tensor moved =
        run_mace(*layer, c, at::matmul(in.pos, rotation.t()) * (inversion ? -1.0 : 1.0),
                 rotate_features(in.node_feats, c.irreps_in, rotation, inversion), in.node_attrs, in.edge_index);
    const at::Tensor expected = rotate_features(out, c.irreps_out, rotation, inversion);
    EXPECT_LE(max_abs(moved - expected), 1e-12 * max_abs(expected)) << "inversion " << inversion;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layers, MaceEquivariance,
    ::testing::Values(
        kSmallCase,
        // lmax 2, correlation 3 (U_3 with l = 2 couplings), default node attributes.
        MaceCase{"{lmax: 2, correlation: 3, num_elements: 2, hidden_irreps_block: [{l: 0, mul: 2}, {l: 1, mul: 2}, "
                 "{l: 2, mul: 2}], input_block: [{l: 0, mul: 2}, {l: 1, mul: 1}, {l: 2, mul: 1}], "
                 "num_radial_basis: 4}",
                 e3nn::Irreps("2x0e+1x1o+1x2e"), e3nn::Irreps("2x0e+2x1o+2x2e"), 2, 4},
        // Correlation 1 without the skip connection.
        MaceCase{"{lmax: 2, correlation: 1, num_elements: 2, hidden_irreps_block: [{l: 0, mul: 3}], "
                 "input_block: [{l: 0, mul: 3}], num_radial_basis: 2, use_sc: false}",
                 e3nn::Irreps("3x0e"), e3nn::Irreps("3x0e"), 2, 2}),
    mace_case_name);

TEST(MaceLayer, MessagesFlowFromEdgeIndex0ToEdgeIndex1) {
  // MACE: sender = edge_index[0], receiver = edge_index[1] (docs/layers.md#conventions). Without
  // the skip connection a node that receives no message has X = 0 and so a zero output.
  const MaceCase c{"{lmax: 1, correlation: 2, num_elements: 2, hidden_irreps_block: [{l: 0, mul: 2}, {l: 1, mul: 2}], "
                   "input_block: [{l: 0, mul: 2}], num_radial_basis: 3, use_sc: false}",
                   e3nn::Irreps("2x0e"), e3nn::Irreps("2x0e+2x1o"), 2, 3};
  auto layer = build_layer("MACE_layer", c.config);
  randomize_parameters(*layer, 5);
  const MaceInputs in = random_inputs(c, 6);
  const at::Tensor edge_index = at::tensor({0, 1}, at::kLong).view({2, 1});
  const at::Tensor out = run_mace(*layer, c, in.pos, in.node_feats, in.node_attrs, edge_index);
  EXPECT_EQ(max_abs(out[0]), 0.0);
  EXPECT_GT(max_abs(out[1]), 1e-8);
}

TEST(MaceLayer, AutogradMatchesCentralDifferences) {
  const MaceCase& c = kSmallCase;
  auto layer = build_layer("MACE_layer", c.config);
  randomize_parameters(*layer, 41);
  const MaceInputs in = random_inputs(c, 7);
  auto objective = [&](const at::Tensor& pos, const at::Tensor& features) {
    return run_mace(*layer, c, pos, features, in.node_attrs, in.edge_index).pow(2).sum();
  };
  const at::Tensor pos_var = in.pos.clone().requires_grad_(true);
  const at::Tensor feats_var = in.node_feats.clone().requires_grad_(true);
  const auto grads = torch::autograd::grad({objective(pos_var, feats_var)}, {pos_var, feats_var});
  const at::Tensor numerics[2] = {
      central_differences([&](const at::Tensor& pos) { return objective(pos, in.node_feats); }, in.pos),
      central_differences([&](const at::Tensor& feats) { return objective(in.pos, feats); }, in.node_feats)};
  for (int which = 0; which < 2; ++which) {
    const at::Tensor& numeric = numerics[which];
    EXPECT_LE(max_abs(grads[which] - numeric), 1e-7 * std::max(1.0, max_abs(numeric))) << "input " << which;
  }
}

TEST(MaceLayer, ConfigErrors) {
  const std::string base = "lmax: 1, correlation: 2, num_elements: 2, input_block: [{l: 0, mul: 2}]";
  EXPECT_EQ(build_error("MACE_layer", "{" + base + ", hidden_irreps_block: [{l: 0, mul: 2}, {l: 1, mul: 2}]}"), "");

  // docs/layers.md#quirk-mace-hidden-mul: every hidden block must have mul F (here F = 4, 1o has
  // 2); the message names the layer, the key and the YAML position.
  const std::string mul_error =
      build_error("MACE_layer", "{" + base + ", hidden_irreps_block: [{l: 0, mul: 4}, {l: 1, mul: 2}]}");
  EXPECT_NE(mul_error.find("<test>:1:"), std::string::npos) << mul_error;
  EXPECT_NE(mul_error.find("layer 'layer', config 'hidden_irreps_block'"), std::string::npos) << mul_error;
  EXPECT_NE(mul_error.find("mul F = 4"), std::string::npos) << mul_error;

  // docs/layers.md#quirk-mace-hidden-mul: 1e is not reachable from 0e + 1o at correlation order 1.
  const std::string reach_error =
      build_error("MACE_layer", "{" + base + ", hidden_irreps_block: [{l: 0, mul: 2}, {l: 1, mul: 2, p: e}]}");
  EXPECT_NE(reach_error.find("config 'hidden_irreps_block'"), std::string::npos) << reach_error;
  EXPECT_NE(reach_error.find("1e"), std::string::npos) << reach_error;

  EXPECT_NE(build_error("MACE_layer", "{" + base + ", hidden_irreps_block: [{l: 1, mul: 2}]}").find("0e block"),
            std::string::npos);
  EXPECT_NE(build_error("MACE_layer", "{" + base + ", hidden_irreps_block: [{l: 0, mul: 2}], "
                                                   "node_attr_block: [{l: 0, mul: 3}]}")
                .find("num_elements is 2"),
            std::string::npos);
  EXPECT_NE(build_error("MACE_layer", "{" + base + ", hidden_irreps_block: [{l: 0, mul: 2}], correlaton: 3}")
                .find("correlation"),
            std::string::npos);
  EXPECT_NE(build_error("MACE_layer", "{lmax: 1, num_elements: 2, input_block: [{l: 0, mul: 2}], "
                                      "hidden_irreps_block: [{l: 0, mul: 2}]}")
                .find("config 'correlation'"),
            std::string::npos);
}

TEST(MaceLayer, WrongInputWidthsAreNamed) {
  const MaceCase& c = kSmallCase;
  auto layer = build_layer("MACE_layer", c.config);
  const MaceInputs in = random_inputs(c, 8);
  const at::Tensor vectors = at::randn({18, 3}, f64());
  const at::Tensor edge_feats = at::randn({18, c.n_radial}, f64());
  try {
    call_tensor(*layer, {vectors, in.node_feats, in.node_attrs, at::randn({18, 5}, f64()), in.edge_index});
    FAIL() << "edge_feats of the wrong width were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("edge_feats must be [E=18, num_radial_basis=3]"), std::string::npos)
        << e.what();
  }
  try {
    call_tensor(*layer, {vectors, in.node_feats.narrow(1, 0, 2), in.node_attrs, edge_feats, in.edge_index});
    FAIL() << "node_feats of the wrong width were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("MACE_layer 'layer': input node_feats"), std::string::npos) << e.what();
  }
}

// An edge naming a node past the last, or a negative one, is refused with the nodes' range.
TEST(MaceLayer, EdgesToNodesOutsideTheGraphAreRefused) {
  const MaceCase& c = kSmallCase;
  auto layer = build_layer("MACE_layer", c.config);
  const MaceInputs in = random_inputs(c, 8);
  const int64_t n_nodes = in.node_feats.size(0);
  const at::Tensor vectors = at::randn({18, 3}, f64());
  const at::Tensor edge_feats = at::randn({18, c.n_radial}, f64());
  for (const int64_t bad : {n_nodes, int64_t{-1}}) {
    at::Tensor edge_index = in.edge_index.clone();
    edge_index[1][5] = bad;
    try {
      call_tensor(*layer, {vectors, in.node_feats, in.node_attrs, edge_feats, edge_index});
      FAIL() << "an edge to node " << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("edge_index refers to a node outside 0.." + std::to_string(n_nodes - 1)),
                std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace klay::testing
