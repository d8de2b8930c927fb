// The norm activation kernel against e3nn's NormActivation module (the composite path): values and
// input gradients in float64 to rounding for several irreps (l 0 to 3, both parities, mul 1 to
// 32), the activations ConvNetLayer names, copies whose norm is clipped at ε, second derivatives
// (training's force loss), float32 and any thread count.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <string>
#include <vector>

#include "e3nn/gate.hpp"
#include "e3nn/irreps.hpp"
#include "kernels/norm_activation.hpp"
#include "kernels/one_input_derivatives.hpp"
#include "kernels/relative_error.hpp"
#include "kernels/uvu_convolution.hpp"

namespace klay::kernels {
namespace {

using e3nn::Irreps;

struct Case {
  std::string irreps, activation;
};

std::vector<Case> cases() {
  return {{"4x0e+4x0o+4x1e+4x1o", "silu"},
          {"1x0e+2x1o+3x2e+4x3o+5x2o", "ssp"},
          {"32x0e+32x1o+32x2e", "tanh"},
          {"3x1o+2x0e+3x1o", "abs"}};
}

// Features [3, rows, dim]; the first row's copies are zero, so their norms are clipped at ε.
at::Tensor random_features(const e3nn::NormActivationImpl& module, int64_t rows, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor x = at::randn({3, rows, module.irreps_in().dim()}, at::kDouble);
  x[0][0].zero_();
  return x;
}

Derivatives derivatives(bool fused, const e3nn::NormActivationImpl& module, const at::Tensor& features,
                        at::ScalarType dtype, bool second_order) {
  return one_input_derivatives([&](const at::Tensor& x) { return norm_activation(module, x); }, fused, features,
                               dtype, second_order);
}

TEST(NormActivationKernel, MatchesTheModuleAndItsGradient) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.irreps + " " + c.activation);
    const e3nn::NormActivation module(Irreps(c.irreps), c.activation);
    ASSERT_TRUE(norm_activation_kernel_supports(*module));
    const at::Tensor features = random_features(*module, 31, 4);
    const KernelCounters before = norm_activation_counters();
    const Derivatives fused = derivatives(true, *module, features, at::kDouble, false);
    const KernelCounters after = norm_activation_counters();
    EXPECT_EQ(after.forward_calls - before.forward_calls, 1);
    EXPECT_EQ(after.backward_calls - before.backward_calls, 1);
    const Derivatives composite = derivatives(false, *module, features, at::kDouble, false);
    EXPECT_EQ(norm_activation_counters().forward_calls, after.forward_calls);  // switched off: the module
    EXPECT_LE(relative_error(fused.out, composite.out), 1e-12);
    EXPECT_LE(relative_error(fused.grad, composite.grad), 1e-12);
    EXPECT_LE(relative_error(norm_activation(*module, features), module->forward(features)), 1e-12);
  }
}

TEST(NormActivationKernel, SecondDerivativesGoThroughTheModule) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.irreps + " " + c.activation);
    const e3nn::NormActivation module(Irreps(c.irreps), c.activation);
    const at::Tensor features = random_features(*module, 13, 8);
    const KernelCounters before = norm_activation_counters();
    const Derivatives fused = derivatives(true, *module, features, at::kDouble, true);
    EXPECT_EQ(norm_activation_counters().composite_backward_calls - before.composite_backward_calls, 1);
    const Derivatives composite = derivatives(false, *module, features, at::kDouble, true);
    EXPECT_LE(relative_error(fused.grad, composite.grad), 1e-12);
    EXPECT_LE(relative_error(fused.second, composite.second), 1e-12);
  }
}

TEST(NormActivationKernel, Float32AgreesWithFloat64ToSinglePrecision) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.irreps + " " + c.activation);
    const e3nn::NormActivation module(Irreps(c.irreps), c.activation);
    e3nn::NormActivation single(Irreps(c.irreps), c.activation);
    single->to(at::kFloat);
    // No clipped copies: at r = ε, f(r)/r cancels to nothing in float32 (ssp: log1p(exp(r)) − log 2).
    at::manual_seed(1);
    const at::Tensor features = at::randn({27, module->irreps_in().dim()}, at::kDouble);
    const int64_t calls = norm_activation_counters().forward_calls;
    const Derivatives d = derivatives(true, *single, features, at::kFloat, false);
    EXPECT_EQ(norm_activation_counters().forward_calls - calls, 1);
    EXPECT_EQ(d.out.scalar_type(), at::kFloat);
    const Derivatives reference = derivatives(false, *module, features, at::kDouble, false);
    EXPECT_LE(relative_error(d.out, reference.out), 1e-6);
    EXPECT_LE(relative_error(d.grad, reference.grad), 1e-6);
  }
}

TEST(NormActivationKernel, ResultsDoNotDependOnTheThreadCount) {
  const e3nn::NormActivation module(Irreps(cases()[1].irreps), cases()[1].activation);
  const at::Tensor features = random_features(*module, 600, 2);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const Derivatives one = derivatives(true, *module, features, at::kDouble, false);
  at::set_num_threads(2);
  const Derivatives two = derivatives(true, *module, features, at::kDouble, false);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one.out, two.out));
  EXPECT_TRUE(at::equal(one.grad, two.grad));
}

TEST(NormActivationKernel, InputsOfTheWrongWidthAreErrors) {
  const e3nn::NormActivation module(Irreps(cases()[0].irreps), "silu");
  EXPECT_ANY_THROW(norm_activation(*module, at::randn({3, module->irreps_in().dim() + 1}, at::kDouble)));
}

}  // namespace
}  // namespace klay::kernels
