// E3Attention and E3AttentionPooling (docs/layers.md#e3-attention, #e3-attention-pooling):
// state_dict shapes derived by hand, rotation/inversion equivariance, the attention semantics
// (cutoff, normalisation, aggregation onto edge_index[1]), autograd vs central finite differences,
// config errors.
// Numbers against Python: layer_E3Attention_0 and layer_E3AttentionPooling_0 in the runtime
// conformance test.
#include <gtest/gtest.h>

#include <torch/csrc/autograd/autograd.h>

#include "conv_layer_testing.hpp"

namespace klay::testing {
namespace {

// The configuration of layer_E3Attention_0: I = 4x0e+2x1o, Q = K = 3x0e+1x1o, V = 2x0e+2x1o,
// sh = 0e+1o+2e.
const char* kAttentionConfig =
    "{irreps_input_block: [{l: 0, mul: 4}, {l: 1, mul: 2}], irreps_query_block: [{l: 0, mul: 3}, {l: 1, mul: 1}], "
    "irreps_key_block: [{l: 0, mul: 3}, {l: 1, mul: 1}], irreps_value_block: [{l: 0, mul: 2}, {l: 1, mul: 2}], "
    "edge_sh_lmax: 2, number_of_basis: 6, max_radius: 3.5, radial_neurons: 8}";
const e3nn::Irreps kInput("4x0e+2x1o"), kValue("2x0e+2x1o");
constexpr int kShLmax = 2;
constexpr int64_t kBasis = 6;
constexpr double kMaxRadius = 3.5;

TEST(E3Attention, ShapesFromSpec) {
  auto layer = build_layer("E3Attention", kAttentionConfig);
  // tp_k = FCTP(I, sh → K), uvw paths into K: 0e⊗0e→0e 4·3, 0e⊗1o→1o 4·1, 1o⊗0e→1o 2·1,
  // 1o⊗1o→0e 2·3, 1o⊗2e→1o 2·1 = 26; tp_v into V: 4·2 + 4·2 + 2·2 + 2·2 + 2·2 = 28.
  // dot = FCTP(Q, K → 0e): 3·3 + 1·1 = 10; h_q = Linear(I → Q): 4·3 + 2·1 = 14.
  // The only path with three l ≥ 1 is 1o⊗2e→1o, whose 3j is a buffer.
  const std::map<std::string, std::vector<int64_t>> expected{
      {"h_q.weight", {14}},
      {"h_q.bias", {0}},
      {"h_q.output_mask", {6}},
      {"tp_k.weight", {0}},
      {"tp_k.output_mask", {6}},
      {"tp_k._compiled_main_left_right._w3j_1_2_1", {3, 5, 3}},
      {"fc_k.layer0.weight", {6, 8}},
      {"fc_k.layer1.weight", {8, 26}},
      {"tp_v.weight", {0}},
      {"tp_v.output_mask", {8}},
      {"tp_v._compiled_main_left_right._w3j_1_2_1", {3, 5, 3}},
      {"fc_v.layer0.weight", {6, 8}},
      {"fc_v.layer1.weight", {8, 28}},
      {"dot.weight", {10}},
      {"dot.output_mask", {1}}};
  EXPECT_EQ(state_shapes(*layer), expected);
}

struct AttentionInputs {
  at::Tensor f, edge_index, lengths, sh, embeddings;
};

AttentionInputs attention_inputs(const at::Tensor& pos, const at::Tensor& f, const at::Tensor& edge_index) {
  const EdgeInputs edges = edge_inputs(pos, edge_index, kShLmax, kBasis);
  return {f, edge_index, edges.lengths, edges.sh, edges.embeddings};
}

at::Tensor run_attention(Layer& layer, const AttentionInputs& in) {
  return call_tensor(layer, {in.f, in.edge_index, in.lengths, in.sh, in.embeddings});
}

TEST(E3Attention, RotationsAndInversion) {
  auto layer = build_layer("E3Attention", kAttentionConfig);
  randomize_parameters(*layer, 11);
  at::manual_seed(12);
  const at::Tensor pos = at::randn({5, 3}, f64()) * 1.2;
  const at::Tensor f = at::randn({5, kInput.dim()}, f64());
  const at::Tensor out = run_attention(*layer, attention_inputs(pos, f, small_graph_edges()));
  ASSERT_EQ(out.size(1), kValue.dim());
  ASSERT_GT(max_abs(out), 1e-3);
  const at::Tensor rotation = random_rotation(13);
  for (bool inversion : {false, true}) {
    const at::Tensor moved = run_attention(
        *layer, attention_inputs(at::matmul(pos, rotation.t()) * (inversion ? -1.0 : 1.0),
                                 rotate_features(f, kInput, rotation, inversion), small_graph_edges()));
    const at::Tensor expected = rotate_features(out, kValue, rotation, inversion);
    EXPECT_LE(max_abs(moved - expected), 1e-12 * max_abs(expected)) << "inversion " << inversion;
  }
}

TEST(E3Attention, AggregatesOntoEdgeIndex1WithinMaxRadius) {
  auto layer = build_layer("E3Attention", kAttentionConfig);
  randomize_parameters(*layer, 14);
  at::manual_seed(15);
  const at::Tensor f = at::randn({3, kInput.dim()}, f64());
  // Node 0 at the origin, node 1 inside max_radius, node 2 beyond it.
  const at::Tensor pos = at::tensor({0.0, 0.0, 0.0, 1.0, 0.5, -0.3, 3.0, 2.0, 0.0}, f64()).view({3, 3});
  const at::Tensor near_edge = at::tensor({1, 0}, at::kLong).view({2, 1});
  const at::Tensor both_edges = at::tensor({1, 2, 0, 0}, at::kLong).view({2, 2});
  const at::Tensor near = run_attention(*layer, attention_inputs(pos, f, near_edge));
  const at::Tensor both = run_attention(*layer, attention_inputs(pos, f, both_edges));
  // Only dst = edge_index[1] = node 0 receives; the far edge (|r| > max_radius) has weight 0.
  EXPECT_GT(max_abs(near[0]), 1e-3);
  EXPECT_EQ(max_abs(near.narrow(0, 1, 2)), 0.0);
  EXPECT_LE(max_abs(both - near), 1e-14 * max_abs(near));
}

TEST(E3Attention, AutogradMatchesCentralDifferences) {
  auto layer = build_layer("E3Attention", kAttentionConfig);
  randomize_parameters(*layer, 16);
  at::manual_seed(17);
  // Every edge shorter than max_radius, so every edge length enters through the soft cutoff.
  const at::Tensor pos = at::randn({5, 3}, f64()) * 0.6;
  const at::Tensor f = at::randn({5, kInput.dim()}, f64());
  const AttentionInputs base = attention_inputs(pos, f, small_graph_edges());
  ASSERT_LT(base.lengths.max().item<double>(), kMaxRadius);
  auto objective = [&](const AttentionInputs& in) { return run_attention(*layer, in).pow(2).sum(); };

  AttentionInputs var = base;
  var.f = base.f.clone().requires_grad_(true);
  var.lengths = base.lengths.clone().requires_grad_(true);
  var.sh = base.sh.clone().requires_grad_(true);
  var.embeddings = base.embeddings.clone().requires_grad_(true);
  const auto grads = torch::autograd::grad({objective(var)}, {var.f, var.lengths, var.sh, var.embeddings});

  for (int which = 0; which < 4; ++which) {
    at::Tensor AttentionInputs::*member = which == 0   ? &AttentionInputs::f
                                          : which == 1 ? &AttentionInputs::lengths
                                          : which == 2 ? &AttentionInputs::sh
                                                       : &AttentionInputs::embeddings;
    const at::Tensor numeric = central_differences(
        [&](const at::Tensor& values) {
          AttentionInputs in = base;
          in.*member = values;
          return objective(in);
        },
        base.*member);
    EXPECT_LE(max_abs(grads[which] - numeric), 1e-7 * std::max(1.0, max_abs(numeric))) << "input " << which;
  }
}

TEST(E3Attention, ConfigAndInputErrors) {
  EXPECT_NE(build_error("E3Attention", "{irreps_input_block: [{l: 0, mul: 2}], irreps_query_block: [{l: 0, mul: 2}], "
                                       "irreps_key_block: [{l: 0, mul: 2}], irreps_value_block: [{l: 0, mul: 2}]}")
                .find("config 'edge_sh_lmax'"),
            std::string::npos);
  EXPECT_NE(build_error("E3Attention", "{irreps_input_block: [{l: 0, mul: 2}], irreps_query_block: [{l: 0, mul: 2}], "
                                       "irreps_key_block: [{l: 0, mul: 2}], irreps_value_block: [{l: 0, mul: 2}], "
                                       "edge_sh_lmax: 1, max_radius: 0}")
                .find("config 'max_radius'"),
            std::string::npos);
  auto layer = build_layer("E3Attention", kAttentionConfig);
  AttentionInputs in = attention_inputs(at::randn({5, 3}, f64()), at::randn({5, kInput.dim()}, f64()),
                                        small_graph_edges());
  in.sh = in.sh.narrow(1, 0, 4);
  try {
    run_attention(*layer, in);
    FAIL() << "edge_sh of the wrong width was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("E3Attention 'layer': edge_sh must be [E=18, 9]"), std::string::npos)
        << e.what();
  }
}

// The configuration of layer_E3AttentionPooling_0.
const char* kPoolingConfig =
    "{irreps_input_block: [{l: 0, mul: 4}, {l: 1, mul: 2}], irreps_query_block: [{l: 0, mul: 3}, {l: 1, mul: 1}], "
    "irreps_key_block: [{l: 0, mul: 3}, {l: 1, mul: 1}]}";

TEST(E3AttentionPooling, ShapesFromSpec) {
  auto layer = build_layer("E3AttentionPooling", kPoolingConfig);
  auto shapes = state_shapes(*layer);
  // Each GatedAtomwiseLinear(I → X): hidden = 4x0e + 2x0e (gates) + 2x1o simplified = 6x0e+2x1o,
  // lin1 = 4·6 + 2·2 = 28, lin2 = Linear(4x0e+2x1o → X).
  EXPECT_EQ(shapes["scale"], std::vector<int64_t>{});
  EXPECT_EQ(shapes["h_q.lin1.weight"], std::vector<int64_t>{28});
  EXPECT_EQ(shapes["h_q.gate.mul.output_mask"], std::vector<int64_t>{6});
  EXPECT_EQ(shapes["h_q.lin2.weight"], std::vector<int64_t>{4 * 3 + 2 * 1});
  EXPECT_EQ(shapes["fc_k.lin2.weight"], std::vector<int64_t>{4 * 3 + 2 * 1});
  EXPECT_EQ(shapes["fc_v.lin2.weight"], std::vector<int64_t>{4 * 4 + 2 * 2});
  EXPECT_EQ(shapes["dot.weight"], std::vector<int64_t>{10});
  EXPECT_EQ(shapes.size(), 1 + 3 * 8 + 2u);  // scale, 3 × (lin1 ×3, gate.mul ×2, lin2 ×3), dot ×2
  for (const auto& item : layer->named_buffers()) {
    if (item.key() == "scale") EXPECT_EQ(item.value().item<double>(), 1.0 / std::sqrt(6.0));
  }
}

TEST(E3AttentionPooling, RotationsAndInversion) {
  auto layer = build_layer("E3AttentionPooling", kPoolingConfig);
  randomize_parameters(*layer, 21);
  at::manual_seed(22);
  const at::Tensor f = at::randn({6, kInput.dim()}, f64());
  const at::Tensor out = call_tensor(*layer, {f});
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{1, kInput.dim()}));
  const at::Tensor rotation = random_rotation(23);
  for (bool inversion : {false, true}) {
    const at::Tensor moved = call_tensor(*layer, {rotate_features(f, kInput, rotation, inversion)});
    const at::Tensor expected = rotate_features(out, kInput, rotation, inversion);
    EXPECT_LE(max_abs(moved - expected), 1e-12 * max_abs(expected)) << "inversion " << inversion;
  }
}

TEST(E3AttentionPooling, IsAWeightedMeanOverAllNodes) {
  auto layer = build_layer("E3AttentionPooling", kPoolingConfig);
  randomize_parameters(*layer, 24);
  at::manual_seed(25);
  const at::Tensor row = at::randn({1, kInput.dim()}, f64());
  // Identical nodes: the normalised weights sum to 1, so the pool equals the single-node pool.
  const at::Tensor one = call_tensor(*layer, {row});
  const at::Tensor four = call_tensor(*layer, {row.expand({4, kInput.dim()}).contiguous()});
  EXPECT_LE(max_abs(four - one), 1e-14 * max_abs(one));
  // Node order does not matter (one graph, no batch).
  const at::Tensor f = at::randn({5, kInput.dim()}, f64());
  const at::Tensor permuted = f.index_select(0, at::tensor({3, 0, 4, 1, 2}, at::kLong));
  EXPECT_LE(max_abs(call_tensor(*layer, {permuted}) - call_tensor(*layer, {f})), 1e-14);
}

TEST(E3AttentionPooling, AutogradMatchesCentralDifferences) {
  auto layer = build_layer("E3AttentionPooling", kPoolingConfig);
  randomize_parameters(*layer, 26);
  at::manual_seed(27);
  const at::Tensor f = at::randn({4, kInput.dim()}, f64());
  auto objective = [&](const at::Tensor& x) { return call_tensor(*layer, {x}).pow(2).sum(); };
  const at::Tensor var = f.clone().requires_grad_(true);
  const at::Tensor grad = torch::autograd::grad({objective(var)}, {var})[0];
  const at::Tensor numeric = central_differences(objective, f);
  EXPECT_LE(max_abs(grad - numeric), 1e-7 * std::max(1.0, max_abs(numeric)));
}

TEST(E3AttentionPooling, ConfigErrors) {
  // GatedAtomwiseLinear needs an l>0 block in the input (Python: e3nn Gate error).
  const std::string scalars_only =
      build_error("E3AttentionPooling", "{irreps_input_block: [{l: 0, mul: 4}], irreps_query_block: [{l: 0, mul: 3}], "
                                        "irreps_key_block: [{l: 0, mul: 3}]}");
  EXPECT_NE(scalars_only.find("<test>:1:"), std::string::npos) << scalars_only;
  EXPECT_NE(scalars_only.find("layer 'layer', config 'irreps_input_block'"), std::string::npos) << scalars_only;
  EXPECT_NE(scalars_only.find("l>0 block"), std::string::npos) << scalars_only;
  EXPECT_NE(build_error("E3AttentionPooling", "{irreps_input_block: [{l: 0, mul: 4}, {l: 1, mul: 2}], "
                                              "irreps_query_block: [{l: 0, mul: 3}]}")
                .find("config 'irreps_key_block'"),
            std::string::npos);
  EXPECT_NE(build_error("E3AttentionPooling", "{irreps_input_block: [{l: 0, mul: 4}, {l: 1, mul: 2}], "
                                              "irreps_query_block: [{l: 0, mul: 3}], irreps_key_block: [], batch: 1}")
                .find("batch"),
            std::string::npos);
}

}  // namespace
}  // namespace klay::testing
