// AutogradForces (docs/layers.md#autograd-forces): forces of a known potential, differentiable forces
// (create_graph), clear errors. Numbers against Python: layer_AutogradForces_0.
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "conv_layer_testing.hpp"

namespace klay::testing {
namespace {

TEST(AutogradForces, HarmonicPotential) {
  // E = Σ_i k_i |x_i|² per atom → F_i = −2 k_i x_i.
  auto layer = build_layer("AutogradForces", "{}");
  at::manual_seed(2);
  const at::Tensor pos = at::randn({4, 3}, f64()).requires_grad_(true);
  const at::Tensor k = at::tensor({1.0, 2.0, 3.0, 4.0}, f64()).view({4, 1});
  const at::Tensor energy = (k * pos.pow(2)).sum(1, /*keepdim=*/true);
  const at::Tensor forces = call_tensor(*layer, {energy, pos});
  EXPECT_TRUE(at::allclose(forces, -2.0 * k * pos.detach(), 0, 1e-15));
  EXPECT_TRUE(layer->named_parameters().is_empty());
}

TEST(AutogradForces, ForcesAreDifferentiable) {
  // E = Σ |x|⁴ → F = −4|x|²x; d(ΣF)/dx_j = −4(|x|² + 2 x_j Σ_k x_k) needs create_graph=True.
  auto layer = build_layer("AutogradForces", "{}");
  const at::Tensor x = at::tensor({0.3, -0.7, 1.1}, f64()).view({1, 3}).requires_grad_(true);
  const at::Tensor forces = call_tensor(*layer, {x.pow(2).sum().pow(2), x});
  ASSERT_TRUE(forces.requires_grad());
  const at::Tensor second = torch::autograd::grad({forces.sum()}, {x})[0];
  const at::Tensor xd = x.detach();
  const at::Tensor expected = -4.0 * (xd.pow(2).sum() + 2.0 * xd * xd.sum());
  EXPECT_TRUE(at::allclose(second, expected, 0, 1e-14));
}

TEST(AutogradForces, UntrackedPositionsAreAnError) {
  auto layer = build_layer("AutogradForces", "{}");
  const at::Tensor pos = at::ones({2, 3}, f64());
  try {
    call_tensor(*layer, {pos.sum(), pos});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("AutogradForces 'layer': input pos"), std::string::npos) << e.what();
  }
  const at::Tensor tracked = at::ones({2, 3}, f64()).requires_grad_(true);
  const at::Tensor other = at::ones({2, 3}, f64()).requires_grad_(true);
  EXPECT_THROW(call_tensor(*layer, {other.sum(), tracked}), Error);  // energy does not depend on pos
}

}  // namespace
}  // namespace klay::testing
