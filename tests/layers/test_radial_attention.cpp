// RadialAttention and AttentionInteractionBlock (docs/layers.md#radial-attention). Python cannot
// build either layer, so there is no reference data: these tests check hand-computed values, the
// would-be state_dict layout, equivariance and config errors.
#include <gtest/gtest.h>

#include "conv_layer_testing.hpp"

namespace klay::testing {
namespace {

void set_parameter(Layer& layer, const std::string& name, const std::vector<double>& values) {
  at::NoGradGuard no_grad;
  at::Tensor p = layer.named_parameters()[name];
  ASSERT_EQ(p.numel(), static_cast<int64_t>(values.size())) << name;
  p.copy_(at::tensor(values, f64()).view(p.sizes()));
}

// Python's float32 buffer π·k, promoted to float64 in the product with the lengths.
double frequency(int k) { return static_cast<double>(static_cast<float>(k) * static_cast<float>(M_PI)); }
double silu(double z) { return z / (1.0 + std::exp(-z)); }

TEST(RadialAttention, StateLayoutIsPythons) {
  auto layer = build_layer("RadialAttention", "{n_input: 3, n_hidden_layers: 2, hidden_layer_width: 5}");
  const auto buffers = layer->named_buffers();
  ASSERT_TRUE(buffers.contains("n"));
  const at::Tensor n = buffers["n"];
  EXPECT_EQ(n.scalar_type(), at::kFloat);
  ASSERT_EQ(n.numel(), 3);
  for (int k = 1; k <= 3; ++k) EXPECT_EQ(static_cast<double>(n[k - 1].item<float>()), frequency(k));
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& item : layer->named_parameters()) shapes[item.key()] = item.value().sizes().vec();
  const std::map<std::string, std::vector<int64_t>> expected{
      {"nn.0.weight", {5, 3}}, {"nn.0.bias", {5}}, {"nn.2.weight", {5, 5}}, {"nn.2.bias", {5}},
      {"nn.4.weight", {5, 5}}, {"nn.4.bias", {5}}, {"nn.6.weight", {1, 5}}, {"nn.6.bias", {1}}};
  EXPECT_EQ(shapes, expected);
}

TEST(RadialAttention, HandComputedSilu) {
  auto layer = build_layer("RadialAttention", "{n_input: 2, n_hidden_layers: 0, hidden_layer_width: 1}");
  set_parameter(*layer, "nn.0.weight", {0.3, -0.7});
  set_parameter(*layer, "nn.0.bias", {0.2});
  set_parameter(*layer, "nn.2.weight", {1.5});
  set_parameter(*layer, "nn.2.bias", {-0.1});
  const std::vector<double> r{0.7, 1.9, 3.3};
  const at::Tensor out = call_tensor(*layer, {at::tensor(r, f64())});
  ASSERT_EQ(out.sizes(), (c10::IntArrayRef{3, 1}));
  for (size_t e = 0; e < r.size(); ++e) {
    const double x1 = std::sin(frequency(1) * r[e]) / r[e], x2 = std::sin(frequency(2) * r[e]) / r[e];
    const double expected = 1.5 * silu(0.3 * x1 - 0.7 * x2 + 0.2) - 0.1;
    EXPECT_NEAR(out[e][0].item<double>(), expected, 1e-15 * std::max(1.0, std::abs(expected)));
  }
}

TEST(RadialAttention, HandComputedShiftedSoftplusWithHiddenLayer) {
  auto layer = build_layer("RadialAttention",
                           "{n_input: 1, n_hidden_layers: 1, hidden_layer_width: 1, nonlinearity: ssp}");
  set_parameter(*layer, "nn.0.weight", {0.9});
  set_parameter(*layer, "nn.0.bias", {-0.3});
  set_parameter(*layer, "nn.2.weight", {-1.1});
  set_parameter(*layer, "nn.2.bias", {0.4});
  set_parameter(*layer, "nn.4.weight", {2.0});
  set_parameter(*layer, "nn.4.bias", {0.05});
  auto ssp = [](double z) { return std::log1p(std::exp(z)) - std::log(2.0); };
  const double r = 1.3;
  const double x = std::sin(frequency(1) * r) / r;
  const double expected = 2.0 * ssp(-1.1 * ssp(0.9 * x - 0.3) + 0.4) + 0.05;
  const at::Tensor out = call_tensor(*layer, {at::tensor({r}, f64())});
  EXPECT_NEAR(out.item<double>(), expected, 1e-15);
}

TEST(RadialAttention, ConfigErrors) {
  EXPECT_NE(build_error("RadialAttention", "{n_input: 2, hidden_layer_width: 3}").find("n_hidden_layers"),
            std::string::npos);
  EXPECT_NE(build_error("RadialAttention",
                        "{n_input: 2, n_hidden_layers: 1, hidden_layer_width: 3, nonlinearity: relu}")
                .find("silu or ssp"),
            std::string::npos);
  EXPECT_NE(build_error("RadialAttention", "{n_input: 0, n_hidden_layers: 1, hidden_layer_width: 3}")
                .find("n_input"),
            std::string::npos);
}

// Scalars only: every e3nn normalisation constant is 1 (one path per output, mul 1), so the block
// reduces to out[i] = b·Σ_{e: ei[0][e]=i} β·(W·emb_e)·(a·h[ei[1][e]])·sh_e + s·h[i]·x[i].
TEST(AttentionInteractionBlock, HandComputedScalarCase) {
  auto layer =
      build_layer("AttentionInteractionBlock",
                  "{irreps_in: 1x0e, irreps_out: 1x0e, node_attr_irreps: 1x0e, edge_attr_irreps: 1x0e, "
                  "edge_embedding_irreps: 1x0e, invariant_layers: 0, avg_num_neighbors: 9.0}");
  const double a = 0.8, W = -1.3, b = 1.7, s = 0.6, beta = 2.5;
  set_parameter(*layer, "linear_1.weight", {a});
  set_parameter(*layer, "fc.layer0.weight", {W});
  set_parameter(*layer, "linear_2.weight", {b});
  set_parameter(*layer, "sc.weight", {s});
  {
    at::NoGradGuard no_grad;
    for (const auto& item : layer->named_parameters())
      if (item.key().rfind("radial_attention.nn.", 0) == 0) item.value().zero_();
  }
  set_parameter(*layer, "radial_attention.nn.6.bias", {beta});

  const std::vector<double> h{0.5, -1.2, 2.0}, x{1.0, 0.3, -0.4};
  const std::vector<int64_t> dst{0, 0, 1, 2}, src{1, 2, 0, 0};
  const std::vector<double> emb{0.9, -0.2, 0.4, 1.1}, sh{1.0, 0.7, -0.5, 1.0}, r{1.0, 2.0, 1.5, 2.5};
  const at::Tensor out = call_tensor(
      *layer, {at::tensor(x, f64()).view({3, 1}), at::tensor(h, f64()).view({3, 1}),
               at::tensor(emb, f64()).view({4, 1}), at::tensor(sh, f64()).view({4, 1}),
               at::stack({at::tensor(dst, at::kLong), at::tensor(src, at::kLong)}), at::tensor(r, f64())});
  for (int i = 0; i < 3; ++i) {
    double message_sum = 0;
    for (size_t e = 0; e < dst.size(); ++e)
      if (dst[e] == i) message_sum += beta * (W * emb[e]) * (a * h[src[e]]) * sh[e];
    const double expected = b * message_sum + s * h[i] * x[i];  // no 1/√avg_num_neighbors
    EXPECT_NEAR(out[i][0].item<double>(), expected, 1e-14) << "node " << i;
  }
}

TEST(AttentionInteractionBlock, StateIsInteractionBlockPlusRadialAttention) {
  auto layer = build_layer("AttentionInteractionBlock",
                           "{irreps_in: 2x0e+1x1o, irreps_out: 2x0e+1x1o, node_attr_irreps: 2x0e, "
                           "edge_attr_irreps: 1x0e+1x1o, edge_embedding_irreps: 4x0e}");
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& item : layer->named_parameters()) shapes[item.key()] = item.value().sizes().vec();
  // uvu paths: 0e⊗0e→0e, 0e⊗1o→1o, 1o⊗0e→1o, 1o⊗1o→0e: weight_numel = 2 + 2 + 1 + 1.
  EXPECT_EQ(shapes["fc.layer0.weight"], (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(shapes["fc.layer1.weight"], (std::vector<int64_t>{8, 6}));
  EXPECT_EQ(shapes["radial_attention.nn.0.weight"], (std::vector<int64_t>{8, 8}));
  EXPECT_EQ(shapes["radial_attention.nn.6.weight"], (std::vector<int64_t>{1, 8}));
  EXPECT_TRUE(shapes.count("linear_1.weight") && shapes.count("linear_2.weight") &&
              shapes.count("sc.weight"));
  EXPECT_TRUE(layer->named_buffers().contains("radial_attention.n"));
}

TEST(AttentionInteractionBlock, Equivariant) {
  const e3nn::Irreps irreps_in("2x0e+1x1o+1x2e"), irreps_out("1x0e+2x1o+1x2e");
  auto layer =
      build_layer("AttentionInteractionBlock",
                  "{irreps_in: 2x0e+1x1o+1x2e, irreps_out: 1x0e+2x1o+1x2e, node_attr_irreps: 2x0e, "
                  "edge_attr_irreps: 1x0e+1x1o+1x2e, edge_embedding_irreps: 3x0e, invariant_layers: 2}");
  randomize_parameters(*layer, 21);
  at::manual_seed(4);
  const at::Tensor pos = at::randn({4, 3}, f64());
  const at::Tensor edge_index =
      at::tensor(std::vector<int64_t>{0, 0, 1, 2, 3, 3, 1, 2, 0, 0, 1, 2}, at::kLong).view({2, 6});
  const at::Tensor x = at::randn({4, 2}, f64()), h = at::randn({4, irreps_in.dim()}, f64());
  auto run = [&](const at::Tensor& positions, const at::Tensor& features) {
    const at::Tensor vec =
        positions.index_select(0, edge_index[1]) - positions.index_select(0, edge_index[0]);
    const at::Tensor r = vec.norm(2, 1);
    const at::Tensor emb = at::stack({at::exp(-r), at::cos(r), r * r}, 1);
    return call_tensor(*layer, {x, features, emb, e3nn::spherical_harmonics(2, vec, true), edge_index, r});
  };
  const at::Tensor out = run(pos, h);
  const at::Tensor rotation = random_rotation(5);
  for (bool inversion : {false, true}) {
    const at::Tensor moved = run(at::matmul(pos, rotation.t()) * (inversion ? -1.0 : 1.0),
                                 rotate_features(h, irreps_in, rotation, inversion));
    const at::Tensor expected = rotate_features(out, irreps_out, rotation, inversion);
    EXPECT_LE(max_abs(moved - expected), 1e-12 * max_abs(expected)) << "inversion " << inversion;
  }
}

}  // namespace
}  // namespace klay::testing
