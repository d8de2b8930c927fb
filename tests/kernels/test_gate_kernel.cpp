// The gate kernel against e3nn's Gate module (the composite path): values and input gradients in
// float64 to rounding for scalars and gates of either parity, every activation KLay's layers name
// (silu, ssp, tanh, abs), gated irreps of l 1 to 3, multiplicities 1 to 32, the scalars-only
// variant, second derivatives (training's force loss), float32 and any thread count.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <string>
#include <vector>

#include "e3nn/gate.hpp"
#include "e3nn/irreps.hpp"
#include "kernels/gate.hpp"
#include "kernels/one_input_derivatives.hpp"
#include "kernels/relative_error.hpp"
#include "kernels/uvu_convolution.hpp"
#include "kernels/vector_units.hpp"

namespace klay::kernels {
namespace {

using e3nn::Irreps;

struct Case {
  std::string scalars;
  std::vector<std::string> scalar_acts;
  std::string gates;
  std::vector<std::string> gate_acts;
  std::string gated;
};

std::string describe(const Case& c) { return c.scalars + " | " + c.gates + " | " + c.gated; }

// ConvNetLayer's (even gates), odd gates (when no even scalar is reachable), several scalar
// entries with their own activations, multiplicities 1 to 32, GatedAtomwiseLinear's unsorted
// gated irreps, and a gate without gated irreps.
std::vector<Case> cases() {
  return {{"16x0e", {"silu"}, "64x0e", {"silu"}, "16x1o+16x2e+16x1e+16x2o"},
          {"4x0o", {"tanh"}, "7x0o", {"abs"}, "2x1e+3x2o+2x3e"},
          {"3x0e+2x0o", {"ssp", "tanh"}, "6x0e", {"tanh"}, "1x1o+2x2e+3x3o"},
          {"32x0e+32x0o", {"abs", "abs"}, "32x0o", {"tanh"}, "32x3e"},
          {"5x0e", {"silu"}, "9x0e", {"ssp"}, "4x2e+3x1o+2x1o"},
          {"1x0e", {"ssp"}, "1x0e", {"silu"}, "1x1o"},
          {"8x0e", {"silu"}, "", {}, ""}};
}

e3nn::Gate make_gate(const Case& c) {
  return e3nn::Gate(Irreps(c.scalars), c.scalar_acts, Irreps(c.gates), c.gate_acts, Irreps(c.gated));
}

// Features [2, rows, dim] spread wide enough that ssp's linear branch (x > 20) is taken too.
at::Tensor random_features(const e3nn::GateImpl& g, int64_t rows, uint64_t seed) {
  at::manual_seed(seed);
  return at::randn({2, rows, g.irreps_in().dim()}, at::kDouble) * 8.0;
}

// The gate, d(probe·out)/d(features), and d/d(features) of a probe of that gradient.
Derivatives derivatives(bool fused, const e3nn::GateImpl& g, const at::Tensor& features, at::ScalarType dtype,
                        bool scalars_only, bool second_order) {
  return one_input_derivatives([&](const at::Tensor& x) { return scalars_only ? gate_scalars(g, x) : gate(g, x); },
                               fused, features, dtype, second_order);
}

TEST(GateKernel, MatchesTheGateAndItsGradient) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(describe(c));
    const e3nn::Gate g = make_gate(c);
    ASSERT_TRUE(gate_kernel_supports(*g));
    const at::Tensor features = random_features(*g, 33, 5);
    for (bool scalars_only : {false, true}) {
      SCOPED_TRACE(scalars_only ? "scalars only" : "whole gate");
      const KernelCounters before = gate_counters();
      const Derivatives fused = derivatives(true, *g, features, at::kDouble, scalars_only, false);
      const KernelCounters after = gate_counters();
      EXPECT_EQ(after.forward_calls - before.forward_calls, 1);
      EXPECT_EQ(after.backward_calls - before.backward_calls, 1);
      const Derivatives composite = derivatives(false, *g, features, at::kDouble, scalars_only, false);
      EXPECT_EQ(gate_counters().forward_calls, after.forward_calls);  // switched off: the module
      EXPECT_EQ(fused.out.sizes(), composite.out.sizes());
      EXPECT_LE(relative_error(fused.out, composite.out), 1e-12);
      EXPECT_LE(relative_error(fused.grad, composite.grad), 1e-12);
    }
  }
}

TEST(GateKernel, TheModuleItselfAgreesWithTheKernel) {
  // The reference above goes through gate() switched off; here the module is called directly.
  const e3nn::Gate g = make_gate(cases()[0]);
  const at::Tensor features = random_features(*g, 11, 2);
  EXPECT_LE(relative_error(gate(*g, features), g->forward(features)), 1e-12);
  EXPECT_LE(relative_error(gate_scalars(*g, features), g->forward_scalars(features)), 1e-12);
}

TEST(GateKernel, SecondDerivativesGoThroughTheGate) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(describe(c));
    const e3nn::Gate g = make_gate(c);
    // Near zero, where the activations curve (abs's second derivative is zero either way).
    const at::Tensor features = random_features(*g, 17, 3) / 8.0;
    const KernelCounters before = gate_counters();
    const Derivatives fused = derivatives(true, *g, features, at::kDouble, false, true);
    EXPECT_EQ(gate_counters().composite_backward_calls - before.composite_backward_calls, 1);
    const Derivatives composite = derivatives(false, *g, features, at::kDouble, false, true);
    EXPECT_LE(relative_error(fused.grad, composite.grad), 1e-12);
    EXPECT_LE(relative_error(fused.second, composite.second), 1e-12);
  }
}

TEST(GateKernel, Float32AgreesWithFloat64ToSinglePrecision) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(describe(c));
    const e3nn::Gate g = make_gate(c);
    e3nn::Gate single = make_gate(c);
    single->to(at::kFloat);
    const at::Tensor features = random_features(*g, 29, 6) / 4.0;
    const int64_t calls = gate_counters().forward_calls;
    const Derivatives d = derivatives(true, *single, features, at::kFloat, false, false);
    EXPECT_EQ(gate_counters().forward_calls - calls, 1);
    EXPECT_EQ(d.out.scalar_type(), at::kFloat);
    const Derivatives reference = derivatives(false, *g, features, at::kDouble, false, false);
    EXPECT_LE(relative_error(d.out, reference.out), 1e-6);
    EXPECT_LE(relative_error(d.grad, reference.grad), 1e-6);
  }
}

TEST(GateKernel, ResultsDoNotDependOnTheThreadCount) {
  const e3nn::Gate g = make_gate(cases()[0]);
  const at::Tensor features = random_features(*g, 700, 9);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const Derivatives one = derivatives(true, *g, features, at::kDouble, false, false);
  at::set_num_threads(2);
  const Derivatives two = derivatives(true, *g, features, at::kDouble, false, false);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one.out, two.out));
  EXPECT_TRUE(at::equal(one.grad, two.grad));
}

// The baseline x86-64 entry points and the AVX2/AVX-512 ones (the widest the CPU has) run the
// same loops over each gated entry: the same values and gradients to rounding.
TEST(GateKernel, BaselineAndWideVectorCodeAgree) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(describe(c));
    const e3nn::Gate g = make_gate(c);
    const at::Tensor features = random_features(*g, 37, 11);
    for (const bool scalars_only : {false, true}) {
      set_wide_vector_units_enabled(false);
      const Derivatives baseline = derivatives(true, *g, features, at::kDouble, scalars_only, false);
      set_wide_vector_units_enabled(true);
      const Derivatives wide = derivatives(true, *g, features, at::kDouble, scalars_only, false);
      EXPECT_LE(relative_error(wide.out, baseline.out), 1e-14);
      EXPECT_LE(relative_error(wide.grad, baseline.grad), 1e-14);
    }
  }
}

TEST(GateKernel, InputsOfTheWrongWidthAreErrors) {
  const e3nn::Gate g = make_gate(cases()[1]);
  EXPECT_ANY_THROW(gate(*g, at::randn({3, g->irreps_in().dim() + 1}, at::kDouble)));
  EXPECT_ANY_THROW(gate_scalars(*g, at::randn({3, g->irreps_in().dim() - 1}, at::kDouble)));
}

}  // namespace
}  // namespace klay::kernels
