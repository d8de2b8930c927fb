// The radial basis kernels (PolynomialCutoff, BesselBasis, RadialBasisEdgeEncoding) against their
// composite path (the kernels switched off): values, gradients with respect to the lengths and
// the Bessel weights in float64 to rounding, for lengths inside and beyond r_max, integer and
// non-integer cutoff degrees, weights moved off π·k as training leaves them; second derivatives
// (training's force loss) through the composite path; float32; r = 0 and lengths far beyond r_max
// as the composite path gives them; any thread count.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "kernels/radial_basis.hpp"
#include "kernels/relative_error.hpp"

namespace klay::kernels {
namespace {

// A radial function of the lengths, and of the Bessel weights where it has them (else undefined).
using Radial = std::function<at::Tensor(const at::Tensor& r, const at::Tensor& weights)>;

struct Case {
  std::string name;
  Radial radial;
  bool has_weights;
  KernelCounters (*counters)();
};

std::vector<Case> cases() {
  std::vector<Case> all;
  for (const PolynomialCutoffParams cutoff : {PolynomialCutoffParams{1 / 3.0, 6}, PolynomialCutoffParams{1 / 5.0, 3},
                                              PolynomialCutoffParams{1 / 4.0, 2}, PolynomialCutoffParams{1 / 4.0, 5.5}})
    all.push_back({"PolynomialCutoff p=" + std::to_string(cutoff.degree),
                   [cutoff](const at::Tensor& r, const at::Tensor&) { return polynomial_cutoff(r, cutoff); }, false,
                   polynomial_cutoff_counters});
  const BesselBasisParams basis{4.0, 2.0 / 4.0};
  all.push_back({"BesselBasis", [basis](const at::Tensor& r, const at::Tensor& w) { return bessel_basis(r, w, basis); },
                 true, bessel_basis_counters});
  for (const PolynomialCutoffParams cutoff : {PolynomialCutoffParams{1 / 4.0, 6}, PolynomialCutoffParams{1 / 4.0, 4.5}})
    all.push_back({"RadialBasisEdgeEncoding p=" + std::to_string(cutoff.degree),
                   [basis, cutoff](const at::Tensor& r, const at::Tensor& w) {
                     return radial_basis_edge_encoding(r, w, basis, cutoff);
                   },
                   true, radial_basis_edge_encoding_counters});
  return all;
}

// Lengths in (0, 1.25·r_max], r_max (4) itself among them, and the Bessel weights π·(1…8) moved
// by 0.1·N(0, 1), as a trained model has them.
at::Tensor random_lengths(int64_t edges, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor r = 0.05 + 4.95 * at::rand({edges}, at::kDouble);
  r[0] = 4.0;
  return r;
}

at::Tensor trained_weights(uint64_t seed) {
  at::manual_seed(seed);
  return at::arange(1, 9, at::kDouble) * M_PI + 0.1 * at::randn({8}, at::kDouble);
}

// The output, d(probe·out)/dr and /dweights, and d/dr and /dweights of a probe of the first
// gradient (second derivatives), with the kernels switched on or off.
struct Derivatives {
  at::Tensor out, grad_r, grad_w, second_r, second_w;
};

Derivatives derivatives(const Case& c, bool fused, const at::Tensor& lengths, const at::Tensor& weights,
                        at::ScalarType dtype, bool second_order) {
  set_fused_kernels_enabled(fused);
  const at::Tensor r = lengths.to(dtype).requires_grad_();
  const at::Tensor w = c.has_weights ? weights.to(dtype).requires_grad_() : at::Tensor();
  const std::vector<at::Tensor> inputs = c.has_weights ? std::vector<at::Tensor>{r, w} : std::vector<at::Tensor>{r};
  const at::Tensor out = c.radial(r, w);
  const at::Tensor probe = at::sin(at::arange(out.numel(), out.options())).view_as(out);
  const std::vector<at::Tensor> grads = torch::autograd::grad({(out * probe).sum()}, inputs, {}, true, second_order);
  Derivatives d{out.detach(), grads[0].detach(), {}, {}, {}};
  if (c.has_weights) d.grad_w = grads[1].detach();
  if (second_order) {
    const at::Tensor probe_r = at::cos(at::arange(r.numel(), r.options()));
    const std::vector<at::Tensor> second = torch::autograd::grad({(grads[0] * probe_r).sum()}, inputs);
    d.second_r = second[0].detach();
    if (c.has_weights) d.second_w = second[1].detach();
  }
  set_fused_kernels_enabled(true);
  return d;
}

TEST(RadialBasisKernel, MatchesTheCompositePathAndItsGradients) {
  const at::Tensor lengths = random_lengths(301, 3), weights = trained_weights(4);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const KernelCounters before = c.counters();
    const Derivatives fused = derivatives(c, true, lengths, weights, at::kDouble, false);
    const KernelCounters after = c.counters();
    EXPECT_EQ(after.forward_calls - before.forward_calls, 1);
    EXPECT_EQ(after.backward_calls - before.backward_calls, 1);
    const Derivatives composite = derivatives(c, false, lengths, weights, at::kDouble, false);
    EXPECT_EQ(c.counters().forward_calls, after.forward_calls);  // switched off: the composite path
    EXPECT_LE(relative_error(fused.out, composite.out), 1e-12);
    EXPECT_LE(relative_error(fused.grad_r, composite.grad_r), 1e-12);
    if (c.has_weights) {
      EXPECT_LE(relative_error(fused.grad_w, composite.grad_w), 1e-12);
    }
  }
}

TEST(RadialBasisKernel, InferenceRunsTheKernelWithoutAutograd) {
  const at::Tensor lengths = random_lengths(97, 5), weights = trained_weights(6);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const int64_t calls = c.counters().forward_calls;
    at::Tensor fused;
    {
      at::NoGradGuard no_grad;
      fused = c.radial(lengths, weights);
    }
    EXPECT_EQ(c.counters().forward_calls - calls, 1);
    EXPECT_FALSE(fused.requires_grad());
    set_fused_kernels_enabled(false);
    const at::Tensor composite = c.radial(lengths, weights);
    set_fused_kernels_enabled(true);
    EXPECT_LE(relative_error(fused, composite), 1e-12);
  }
}

TEST(RadialBasisKernel, SecondDerivativesGoThroughTheCompositePath) {
  const at::Tensor lengths = random_lengths(41, 7), weights = trained_weights(8);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const KernelCounters before = c.counters();
    const Derivatives fused = derivatives(c, true, lengths, weights, at::kDouble, true);
    EXPECT_EQ(c.counters().composite_backward_calls - before.composite_backward_calls, 1);
    const Derivatives composite = derivatives(c, false, lengths, weights, at::kDouble, true);
    EXPECT_LE(relative_error(fused.grad_r, composite.grad_r), 1e-12);
    EXPECT_LE(relative_error(fused.second_r, composite.second_r), 1e-12);
    if (c.has_weights) {
      EXPECT_LE(relative_error(fused.second_w, composite.second_w), 1e-12);
    }
  }
}

TEST(RadialBasisKernel, Float32AgreesWithFloat64ToSinglePrecision) {
  const at::Tensor lengths = random_lengths(203, 9), weights = trained_weights(10);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const int64_t calls = c.counters().forward_calls;
    const Derivatives single = derivatives(c, true, lengths, weights, at::kFloat, false);
    EXPECT_EQ(c.counters().forward_calls - calls, 1);
    EXPECT_EQ(single.out.scalar_type(), at::kFloat);
    const Derivatives reference = derivatives(c, false, lengths, weights, at::kDouble, false);
    EXPECT_LE(relative_error(single.out, reference.out), 1e-6);
    EXPECT_LE(relative_error(single.grad_r, reference.grad_r), 1e-6);
    if (c.has_weights) {
      EXPECT_LE(relative_error(single.grad_w, reference.grad_w), 1e-6);
    }
  }
}

TEST(RadialBasisKernel, ResultsDoNotDependOnTheThreadCount) {
  const at::Tensor lengths = random_lengths(5000, 11), weights = trained_weights(12);
  const int threads = at::get_num_threads();
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    at::set_num_threads(1);
    const Derivatives one = derivatives(c, true, lengths, weights, at::kDouble, false);
    at::set_num_threads(2);
    const Derivatives two = derivatives(c, true, lengths, weights, at::kDouble, false);
    EXPECT_TRUE(at::equal(one.out, two.out));
    EXPECT_TRUE(at::equal(one.grad_r, two.grad_r));
    if (c.has_weights) {
      EXPECT_TRUE(at::equal(one.grad_w, two.grad_w));
    }
  }
  at::set_num_threads(threads);
}

// r = 0 makes the basis 0/0 (NaN, as in Python) and its gradients NaN; the cutoff is 1 there
// with slope 0. Far beyond r_max the cutoff is 0 and the basis takes angles past the range its
// sines are reduced over.
TEST(RadialBasisKernel, ZeroAndFarLengthsAsTheCompositePath) {
  const at::Tensor lengths = at::tensor({0.0, 1.5, 40.0, 3.0e5, 2.0e7}, at::kDouble), weights = trained_weights(13);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const Derivatives fused = derivatives(c, true, lengths, weights, at::kDouble, false);
    const Derivatives composite = derivatives(c, false, lengths, weights, at::kDouble, false);
    EXPECT_TRUE(at::equal(fused.out.isnan(), composite.out.isnan()));
    EXPECT_TRUE(at::equal(fused.grad_r.isnan(), composite.grad_r.isnan()));
    if (c.has_weights) {
      EXPECT_TRUE(fused.out[0].isnan().all().item<bool>());
      EXPECT_TRUE(fused.grad_w.isnan().all().item<bool>());  // summed over r = 0 too
      EXPECT_TRUE(composite.grad_w.isnan().all().item<bool>());
    } else {
      EXPECT_EQ(fused.out[0].item<double>(), 1.0);
      EXPECT_EQ(fused.grad_r[0].item<double>(), 0.0);
    }
    const at::Tensor finite = fused.out.isfinite() & composite.out.isfinite();
    EXPECT_LE(relative_error(fused.out.index({finite}), composite.out.index({finite})), 1e-12);
    const at::Tensor finite_grad = (fused.grad_r.isfinite() & composite.grad_r.isfinite());
    EXPECT_LE(relative_error(fused.grad_r.index({finite_grad}), composite.grad_r.index({finite_grad})), 1e-12);
  }
}

// At a subnormal length 1/r overflows: sin(θ)/r must stay finite (≈ w/r_max), as the composite
// path's division gives it.
TEST(RadialBasisKernel, SubnormalLengthsAsTheCompositePath) {
  const at::Tensor lengths = at::tensor({1e-310, 2.0}, at::kDouble), weights = trained_weights(18);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const at::Tensor fused = c.radial(lengths, weights);
    set_fused_kernels_enabled(false);
    const at::Tensor composite = c.radial(lengths, weights);
    set_fused_kernels_enabled(true);
    EXPECT_TRUE(fused.isfinite().all().item<bool>());
    EXPECT_LE(relative_error(fused, composite), 1e-12);
  }
}

// Lengths of any shape, as the composite path takes them: [2, 3, E] → [2, 3, E(, n)].
TEST(RadialBasisKernel, LengthsOfAnyShape) {
  const at::Tensor lengths = random_lengths(60, 14).view({2, 3, 10}).transpose(1, 2), weights = trained_weights(15);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const Derivatives fused = derivatives(c, true, lengths, weights, at::kDouble, false);
    const Derivatives composite = derivatives(c, false, lengths, weights, at::kDouble, false);
    EXPECT_EQ(fused.out.sizes(), composite.out.sizes());
    EXPECT_LE(relative_error(fused.out, composite.out), 1e-12);
    EXPECT_LE(relative_error(fused.grad_r, composite.grad_r), 1e-12);
  }
}

// Weights of another dtype than the lengths: the composite path, which promotes to float64.
TEST(RadialBasisKernel, MixedDtypesRunTheCompositePath) {
  const at::Tensor lengths = random_lengths(20, 16);
  const BesselBasisParams basis{4.0, 0.5};
  const int64_t calls = bessel_basis_counters().forward_calls;
  const at::Tensor mixed = bessel_basis(lengths.to(at::kFloat), trained_weights(17), basis);
  EXPECT_EQ(bessel_basis_counters().forward_calls, calls);
  EXPECT_EQ(mixed.scalar_type(), at::kDouble);
  EXPECT_EQ(mixed.sizes(), (std::vector<int64_t>{20, 8}));
}

}  // namespace
}  // namespace klay::kernels
