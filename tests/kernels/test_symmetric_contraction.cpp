// The sparse contraction step against the composite (dense matmul) step it replaces, on MACE's own
// U matrices: values, first derivatives and second derivatives (training's force loss) in float64
// to rounding, float32 to its precision, and the whole SymmetricContraction through either step.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <vector>

#include "base/error.hpp"
#include "e3nn/irreps.hpp"
#include "e3nn/symmetric_contraction.hpp"
#include "kernels/relative_error.hpp"
#include "kernels/symmetric_contraction.hpp"
#include "kernels/uvu_convolution.hpp"

namespace klay::kernels {
namespace {

using e3nn::Irrep;
using e3nn::Irreps;

// One step's inputs: features x [R, L], element weights θ [R, P], the previous step b [R, A·L] (or
// none, the first step), and a probe of the result.
struct StepInputs {
  at::Tensor x, theta, b, u, probe;
};

StepInputs step_inputs(const at::Tensor& u, const at::Tensor& previous_u, int64_t rows, uint64_t seed) {
  at::manual_seed(seed);
  const int64_t coupling = Irreps::spherical_harmonics(2).dim(), params = u.size(-1);
  const int64_t outputs = u.numel() / (coupling * params);
  StepInputs in{at::randn({rows, coupling}, at::kDouble), at::randn({rows, params}, at::kDouble), at::Tensor(), u,
                at::randn({rows, outputs}, at::kDouble)};
  if (previous_u.defined()) in.b = at::randn({rows, outputs * coupling}, at::kDouble);
  return in;
}

struct StepDerivatives {
  at::Tensor next, grad_x, grad_theta, grad_b, second_theta;
};

// The step, d(probe·next)/d(x, θ, b), and d/dθ of a probe of the x gradient (a second derivative).
StepDerivatives step_derivatives(bool sparse, const StepInputs& in, at::ScalarType dtype, bool second_order) {
  set_fused_kernels_enabled(sparse);
  const at::Tensor x = in.x.to(dtype).requires_grad_(), theta = in.theta.to(dtype).requires_grad_();
  const at::Tensor b = in.b.defined() ? in.b.to(dtype).requires_grad_() : at::Tensor();
  const at::Tensor next = sparse_contraction_step(x, theta, b, in.u.to(dtype));
  const at::Tensor loss = (next * in.probe.to(dtype)).sum();
  std::vector<at::Tensor> wrt{x, theta};
  if (b.defined()) wrt.push_back(b);
  const auto first = torch::autograd::grad({loss}, wrt, {}, /*retain_graph=*/true, second_order);
  StepDerivatives d{next.detach(), first[0].detach(), first[1].detach(), b.defined() ? first[2].detach() : at::Tensor(),
                    {}};
  if (second_order) {
    const at::Tensor probe_x = at::cos(at::arange(first[0].numel(), first[0].options())).view_as(first[0]);
    d.second_theta = torch::autograd::grad({(first[0] * probe_x).sum()}, {theta})[0].detach();
  }
  set_fused_kernels_enabled(true);
  return d;
}

// MACE's U matrices for lmax 2 features: every output irrep, correlations 1 to 3.
struct UCase {
  Irrep out;
  int correlation;
};
std::vector<UCase> u_cases() {
  std::vector<UCase> cases;
  for (const Irrep& out : {Irrep{0, 1}, Irrep{1, -1}, Irrep{2, 1}})
    for (int correlation = 1; correlation <= 3; ++correlation) cases.push_back({out, correlation});
  return cases;
}

TEST(SparseContractionStep, MatchesTheCompositeStepAndItsGradients) {
  const Irreps coupling = Irreps::spherical_harmonics(2);
  for (const UCase& c : u_cases()) {
    SCOPED_TRACE(c.out.to_string() + ", correlation " + std::to_string(c.correlation));
    const at::Tensor u = e3nn::mace_u_matrix(coupling, c.out, c.correlation);
    // The last step (b undefined) and a nested one (b from a higher correlation).
    const at::Tensor higher = c.correlation > 1 ? u : at::Tensor();
    for (const at::Tensor& previous : {at::Tensor(), higher}) {
      const StepInputs in = step_inputs(u, previous, 37, 11);
      const StepDerivatives sparse = step_derivatives(true, in, at::kDouble, false);
      const StepDerivatives composite = step_derivatives(false, in, at::kDouble, false);
      EXPECT_LE(relative_error(sparse.next, composite.next), 1e-13);
      EXPECT_LE(relative_error(sparse.grad_x, composite.grad_x), 1e-13);
      EXPECT_LE(relative_error(sparse.grad_theta, composite.grad_theta), 1e-13);
      if (in.b.defined()) {
        EXPECT_LE(relative_error(sparse.grad_b, composite.grad_b), 1e-13);
      }
    }
  }
}

TEST(SparseContractionStep, RunsTheKernelAndSecondDerivativesGoThroughTheCompositeStep) {
  const at::Tensor u = e3nn::mace_u_matrix(Irreps::spherical_harmonics(2), Irrep{1, -1}, 3);
  const StepInputs in = step_inputs(u, u, 23, 5);
  const KernelCounters before = contraction_counters();
  const StepDerivatives sparse = step_derivatives(true, in, at::kDouble, true);
  const KernelCounters after = contraction_counters();
  const StepDerivatives composite = step_derivatives(false, in, at::kDouble, true);
  EXPECT_EQ(after.forward_calls - before.forward_calls, 1);
  EXPECT_EQ(after.composite_backward_calls - before.composite_backward_calls, 1);
  EXPECT_EQ(contraction_counters().forward_calls, after.forward_calls);  // switched off: composite only
  EXPECT_LE(relative_error(sparse.grad_x, composite.grad_x), 1e-13);
  EXPECT_LE(relative_error(sparse.second_theta, composite.second_theta), 1e-13);

  const KernelCounters first_order = contraction_counters();
  step_derivatives(true, in, at::kDouble, false);
  EXPECT_EQ(contraction_counters().backward_calls - first_order.backward_calls, 1);
}

TEST(SparseContractionStep, Float32AgreesWithFloat64ToSinglePrecision) {
  const at::Tensor u = e3nn::mace_u_matrix(Irreps::spherical_harmonics(2), Irrep{2, 1}, 3);
  const StepInputs in = step_inputs(u, u, 19, 3);
  const StepDerivatives single = step_derivatives(true, in, at::kFloat, false);
  const StepDerivatives reference = step_derivatives(false, in, at::kDouble, false);
  EXPECT_EQ(single.next.scalar_type(), at::kFloat);
  EXPECT_LE(relative_error(single.next, reference.next), 1e-5);
  EXPECT_LE(relative_error(single.grad_x, reference.grad_x), 1e-5);
  EXPECT_LE(relative_error(single.grad_theta, reference.grad_theta), 1e-5);
  EXPECT_LE(relative_error(single.grad_b, reference.grad_b), 1e-5);
}

TEST(SparseContractionStep, ResultsDoNotDependOnTheThreadCount) {
  const at::Tensor u = e3nn::mace_u_matrix(Irreps::spherical_harmonics(2), Irrep{0, 1}, 3);
  const StepInputs in = step_inputs(u, u, 301, 7);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const StepDerivatives one = step_derivatives(true, in, at::kDouble, false);
  at::set_num_threads(2);
  const StepDerivatives two = step_derivatives(true, in, at::kDouble, false);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one.next, two.next));
  EXPECT_TRUE(at::equal(one.grad_x, two.grad_x));
  EXPECT_TRUE(at::equal(one.grad_theta, two.grad_theta));
  EXPECT_TRUE(at::equal(one.grad_b, two.grad_b));
}

TEST(SparseContractionStep, InputsThatDoNotFitAreErrors) {
  const at::Tensor u = e3nn::mace_u_matrix(Irreps::spherical_harmonics(1), Irrep{0, 1}, 2);  // [4, 4, 2]
  const at::Tensor x = at::randn({5, 4}, at::kDouble);
  EXPECT_THROW(sparse_contraction_step(x, at::randn({5, 3}, at::kDouble), {}, u), Error);
  EXPECT_THROW(sparse_contraction_step(x, at::randn({4, 2}, at::kDouble), {}, u), Error);
  EXPECT_THROW(sparse_contraction_step(x, at::randn({5, 2}, at::kDouble), at::randn({5, 5}, at::kDouble), u), Error);
}

// The whole SymmetricContraction (every output irrep, correlation 3, several elements) through the
// sparse step: values and the derivatives with respect to features, node attributes and weights.
TEST(SparseContractionStep, SymmetricContractionThroughEitherStepAgrees) {
  at::manual_seed(2);
  const Irreps features_irreps("3x0e+3x1o+3x2e");
  e3nn::SymmetricContraction contraction(features_irreps, features_irreps, 3, 3);
  const at::Tensor x = at::randn({29, 3, 9}, at::kDouble).requires_grad_();
  const at::Tensor attrs = at::randn({29, 3}, at::kDouble).requires_grad_();
  const at::Tensor probe = at::randn({29, 3 * 9}, at::kDouble);
  std::vector<at::Tensor> wrt{x, attrs};
  for (const at::Tensor& p : contraction->parameters()) wrt.push_back(p);
  auto run = [&](const e3nn::ContractionStep& step) {
    const at::Tensor out = contraction->forward(x, attrs, step);
    std::vector<at::Tensor> results{out.detach()};
    for (const at::Tensor& g : torch::autograd::grad({(out * probe).sum()}, wrt)) results.push_back(g);
    return results;
  };
  const KernelCounters before = contraction_counters();
  const std::vector<at::Tensor> sparse = run(sparse_contraction_step);
  EXPECT_EQ(contraction_counters().forward_calls - before.forward_calls, 3 * 3);  // 3 outputs x 3 steps
  const std::vector<at::Tensor> composite = run(e3nn::composite_contraction_step);
  ASSERT_EQ(sparse.size(), composite.size());
  for (size_t k = 0; k < sparse.size(); ++k) EXPECT_LE(relative_error(sparse[k], composite[k]), 1e-12) << k;
}

}  // namespace
}  // namespace klay::kernels
