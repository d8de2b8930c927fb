// EGCL (docs/layers.md#egcl): state_dict layout, E(3) equivariance, autograd vs finite differences,
// nodes without incoming edges, config errors. Numbers against Python: layer_EGCL_* conformance.
#include <gtest/gtest.h>

#include "conv_layer_testing.hpp"

namespace klay::testing {
namespace {

struct EgclInputs {
  at::Tensor h, coords, edge_index, shifts, batch;
  std::vector<c10::IValue> args() const { return {h, coords, edge_index, shifts, batch}; }
};

// Two graphs (atoms 0–3 fully connected, atoms 4–5 connected) plus atom 6 of graph 1 without
// edges, last in the list: Python would mis-size its aggregation here.
EgclInputs make_inputs(int64_t hidden) {
  at::manual_seed(7);
  EgclInputs in;
  in.h = at::randn({7, hidden}, f64());
  in.coords = at::randn({7, 3}, f64()) * 2.0;
  std::vector<int64_t> src, dst;
  for (int64_t a = 0; a < 4; ++a)
    for (int64_t b = 0; b < 4; ++b)
      if (a != b) src.push_back(a), dst.push_back(b);
  src.insert(src.end(), {4, 5});
  dst.insert(dst.end(), {5, 4});
  const int64_t n_edges = static_cast<int64_t>(src.size());
  in.edge_index = at::stack({at::tensor(src, at::kLong), at::tensor(dst, at::kLong)});
  in.shifts = at::randn({n_edges, 3}, f64()) * 0.3;
  in.batch = at::tensor(std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1}, at::kLong);
  return in;
}

std::pair<at::Tensor, at::Tensor> run(Layer& layer, const EgclInputs& in) {
  const auto out = layer.call(CallArgs{in.args(), {}}).toTuple();
  return {out->elements()[0].toTensor(), out->elements()[1].toTensor()};
}

TEST(EGCL, StateDictKeysAndShapesMatchPython) {
  auto layer = build_layer("EGCL", "{input_dim: 4, hidden_dim: 4, n_hidden_layers: 2}");
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& item : layer->named_parameters()) shapes[item.key()] = item.value().sizes().vec();
  EXPECT_EQ(shapes.size(), 24u);
  EXPECT_EQ(shapes["phi_e.0.weight"], (std::vector<int64_t>{4, 9}));
  EXPECT_EQ(shapes["phi_e.6.bias"], (std::vector<int64_t>{4}));
  EXPECT_EQ(shapes["phi_r.6.weight"], (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(shapes["phi_h.0.weight"], (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(layer->named_buffers().size(), 0u);
  for (const auto& item : layer->named_parameters()) EXPECT_EQ(item.value().scalar_type(), at::kDouble);
}

TEST(EGCL, EquivariantUnderRotationReflectionAndTranslation) {
  auto layer = build_layer("EGCL", "{hidden_dim: 5, n_hidden_layers: 1}");
  randomize_parameters(*layer, 3);
  const EgclInputs in = make_inputs(5);
  const auto [h_out, coords_out] = run(*layer, in);
  const at::Tensor translation = at::tensor({0.4, -1.2, 2.5}, f64());
  for (bool inversion : {false, true}) {
    const at::Tensor rotation = random_rotation(11) * (inversion ? -1.0 : 1.0);
    EgclInputs moved = in;
    moved.coords = at::matmul(in.coords, rotation.t()) + translation;
    moved.shifts = at::matmul(in.shifts, rotation.t());
    const auto [h_moved, coords_moved] = run(*layer, moved);
    EXPECT_LE(max_abs(h_moved - h_out), 1e-12 * max_abs(h_out));
    const at::Tensor expected = at::matmul(coords_out, rotation.t()) + translation;
    EXPECT_LE(max_abs(coords_moved - expected), 1e-12 * max_abs(expected));
  }
}

TEST(EGCL, NodeWithoutIncomingEdgesGetsZeroMessage) {
  auto layer = build_layer("EGCL", "{hidden_dim: 3}");
  randomize_parameters(*layer, 5);
  const EgclInputs in = make_inputs(3);
  const auto [h_out, coords_out] = run(*layer, in);
  ASSERT_EQ(h_out.size(0), 7);
  // Atom 6: m_i = 0, dX_i = 0.
  EXPECT_TRUE(at::equal(coords_out[6], in.coords[6]));
  auto phi_h = layer->named_children()["phi_h"];
  const at::Tensor expected = phi_h->as<torch::nn::Sequential>()->forward(
      at::cat({in.h.narrow(0, 6, 1), at::zeros({1, 3}, f64())}, 1));
  EXPECT_LE(max_abs(h_out.narrow(0, 6, 1) - expected), 1e-15);
}

TEST(EGCL, CoordinateUpdateUsesMinusShiftAndPerGraphScale) {
  // Zero weights except the last bias of phi_r (= 1): every edge moves its target by
  // C·(coords[j] − coords[i] − shift), C = 1/(atoms in the graph − 1).
  auto layer = build_layer("EGCL", "{hidden_dim: 2, n_hidden_layers: 0}");
  {
    at::NoGradGuard no_grad;
    for (auto& p : layer->parameters()) p.zero_();
    layer->named_parameters()["phi_r.2.bias"].fill_(1.0);
  }
  const at::Tensor h = at::zeros({3, 2}, f64());
  const at::Tensor coords = at::tensor({0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0, 0.0}, f64()).view({3, 3});
  const at::Tensor edge_index = at::tensor(std::vector<int64_t>{1, 2, 0, 0}, at::kLong).view({2, 2});
  const at::Tensor shifts = at::tensor({0.5, 0.0, 0.0, 0.0, 0.0, 1.0}, f64()).view({2, 3});
  const at::Tensor batch = at::zeros({3}, at::kLong);
  const auto out = layer->call(CallArgs{{h, coords, edge_index, shifts, batch}, {}}).toTuple();
  // node 0 receives (1,0,0)−(0.5,0,0) and (0,2,0)−(0,0,1); C = 1/2.
  const at::Tensor expected = at::tensor({0.25, 1.0, -0.5, 1.0, 0.0, 0.0, 0.0, 2.0, 0.0}, f64()).view({3, 3});
  EXPECT_LE(max_abs(out->elements()[1].toTensor() - expected), 1e-15);
}

TEST(EGCL, AutogradMatchesCentralDifferences) {
  auto layer = build_layer("EGCL", "{hidden_dim: 3, n_hidden_layers: 1}");
  randomize_parameters(*layer, 9);
  EgclInputs in = make_inputs(3);
  auto objective = [&](const at::Tensor& coords, const at::Tensor& h) {
    EgclInputs x = in;
    x.coords = coords;
    x.h = h;
    const auto [h_out, coords_out] = run(*layer, x);
    return (h_out.pow(2).sum() + (coords_out * coords_out.roll(1, 1)).sum());
  };
  const at::Tensor coords = in.coords.clone().requires_grad_(true);
  const at::Tensor h = in.h.clone().requires_grad_(true);
  const auto grads = torch::autograd::grad({objective(coords, h)}, {coords, h});
  const at::Tensor numerics[2] = {
      central_differences([&](const at::Tensor& c) { return objective(c, in.h); }, in.coords),
      central_differences([&](const at::Tensor& features) { return objective(in.coords, features); }, in.h)};
  for (int which = 0; which < 2; ++which) {
    const at::Tensor& numeric = numerics[which];
    EXPECT_LE(max_abs(grads[which] - numeric), 1e-7 * std::max(1.0, max_abs(numeric)));
  }
}

TEST(EGCL, ConfigsPythonCannotRunAreRejected) {
  EXPECT_NE(build_error("EGCL", "{normalize_radial: true}").find("normalize_radial"), std::string::npos);
  EXPECT_NE(build_error("EGCL", "{edge_dim: 2}").find("edge_dim"), std::string::npos);
  EXPECT_NE(build_error("EGCL", "{activation: nn.Tanh()}").find("activation"), std::string::npos);
  EXPECT_NE(build_error("EGCL", "{hiden_dim: 4}").find("did you mean 'hidden_dim'"), std::string::npos);
  EXPECT_EQ(build_error("EGCL", "{hidden_dim: 4, edge_dim: 0, normalize_radial: false}"), "");
}

TEST(EGCL, WrongInputShapesAreClearErrors) {
  auto layer = build_layer("EGCL", "{hidden_dim: 3}");
  EgclInputs in = make_inputs(4);
  try {
    run(*layer, in);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hidden_dim=3"), std::string::npos) << e.what();
  }
  in = make_inputs(3);
  in.edge_index = in.edge_index.clone();
  in.edge_index[0][0] = 9;
  EXPECT_THROW(run(*layer, in), Error);
}

}  // namespace
}  // namespace klay::testing
