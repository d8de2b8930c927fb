// The sparse contraction chain against the composite chain (dense matmul steps) it replaces, on
// MACE's own U matrices: values, first derivatives and second derivatives (training's force loss)
// in float64 to rounding, float32 to its precision, and the whole SymmetricContraction through
// either chain.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <string>
#include <vector>

#include "base/error.hpp"
#include "e3nn/irreps.hpp"
#include "e3nn/symmetric_contraction.hpp"
#include "kernels/relative_error.hpp"
#include "kernels/symmetric_contraction.hpp"
#include "kernels/vector_units.hpp"

namespace klay::kernels {
namespace {

using e3nn::Irrep;
using e3nn::Irreps;

// One chain's inputs for lmax 2 features: x [R, 9], θ_K … θ_1 [R, P_ν], U_K … U_1, and a probe
// of the result.
struct ChainInputs {
  at::Tensor x;
  std::vector<at::Tensor> thetas, us;
  at::Tensor probe;
};

ChainInputs chain_inputs(const Irrep& out, int correlation, int64_t rows, uint64_t seed) {
  at::manual_seed(seed);
  const Irreps coupling = Irreps::spherical_harmonics(2);
  ChainInputs in{at::randn({rows, coupling.dim()}, at::kDouble), {}, {}, at::randn({rows, out.dim()}, at::kDouble)};
  for (int nu = correlation; nu >= 1; --nu) {
    in.us.push_back(e3nn::mace_u_matrix(coupling, out, nu));
    in.thetas.push_back(at::randn({rows, in.us.back().size(-1)}, at::kDouble));
  }
  return in;
}

struct ChainDerivatives {
  at::Tensor out, grad_x;
  std::vector<at::Tensor> grad_thetas;  // empty unless the thetas require grad
  at::Tensor second_theta;              // d/dθ_K of a probe of the x gradient
};

// The chain and d(probe·out)/d(x, θ…) (the θ only with theta_grads, as in MD where the element
// weights are constants), with the kernels switched on (sparse) or off.
ChainDerivatives chain_derivatives(bool sparse, const ChainInputs& in, at::ScalarType dtype, bool theta_grads,
                                   bool second_order) {
  set_fused_kernels_enabled(sparse);
  const at::Tensor x = in.x.to(dtype).requires_grad_();
  std::vector<at::Tensor> thetas, us, wrt{x};
  for (const at::Tensor& t : in.thetas) {
    thetas.push_back(t.to(dtype).requires_grad_(theta_grads || second_order));
    if (theta_grads) wrt.push_back(thetas.back());
  }
  for (const at::Tensor& u : in.us) us.push_back(u.to(dtype));
  const at::Tensor out = sparse_contraction_chain(x, thetas, us);
  const at::Tensor loss = (out * in.probe.to(dtype)).sum();
  const auto first = torch::autograd::grad({loss}, wrt, {}, /*retain_graph=*/true, second_order);
  ChainDerivatives d{out.detach(), first[0].detach(), {}, {}};
  for (size_t k = 1; k < first.size(); ++k) d.grad_thetas.push_back(first[k].detach());
  if (second_order) {
    const at::Tensor probe_x = at::cos(at::arange(first[0].numel(), first[0].options())).view_as(first[0]);
    d.second_theta = torch::autograd::grad({(first[0] * probe_x).sum()}, {thetas[0]})[0].detach();
  }
  set_fused_kernels_enabled(true);
  return d;
}

void expect_close(const ChainDerivatives& a, const ChainDerivatives& b, double bound) {
  EXPECT_LE(relative_error(a.out, b.out), bound);
  EXPECT_LE(relative_error(a.grad_x, b.grad_x), bound);
  ASSERT_EQ(a.grad_thetas.size(), b.grad_thetas.size());
  for (size_t k = 0; k < a.grad_thetas.size(); ++k)
    EXPECT_LE(relative_error(a.grad_thetas[k], b.grad_thetas[k]), bound) << "theta " << k;
}

TEST(SparseContractionChain, MatchesTheCompositeChainAndItsGradients) {
  for (const Irrep& out : {Irrep{0, 1}, Irrep{1, -1}, Irrep{2, 1}})
    for (int correlation = 1; correlation <= 3; ++correlation) {
      SCOPED_TRACE(out.to_string() + ", correlation " + std::to_string(correlation));
      const ChainInputs in = chain_inputs(out, correlation, 37, 11);
      for (bool theta_grads : {true, false}) {
        const ChainDerivatives sparse = chain_derivatives(true, in, at::kDouble, theta_grads, false);
        const ChainDerivatives composite = chain_derivatives(false, in, at::kDouble, theta_grads, false);
        expect_close(sparse, composite, 1e-13);
      }
    }
}

TEST(SparseContractionChain, RunsTheKernelAndSecondDerivativesGoThroughTheCompositeChain) {
  const ChainInputs in = chain_inputs(Irrep{1, -1}, 3, 23, 5);
  const KernelCounters before = contraction_counters();
  const ChainDerivatives sparse = chain_derivatives(true, in, at::kDouble, true, true);
  const KernelCounters after = contraction_counters();
  const ChainDerivatives composite = chain_derivatives(false, in, at::kDouble, true, true);
  EXPECT_EQ(after.forward_calls - before.forward_calls, 1);
  EXPECT_EQ(after.composite_backward_calls - before.composite_backward_calls, 1);
  EXPECT_EQ(contraction_counters().forward_calls, after.forward_calls);  // switched off: composite only
  expect_close(sparse, composite, 1e-13);
  EXPECT_LE(relative_error(sparse.second_theta, composite.second_theta), 1e-13);

  const KernelCounters first_order = contraction_counters();
  chain_derivatives(true, in, at::kDouble, true, false);
  EXPECT_EQ(contraction_counters().backward_calls - first_order.backward_calls, 1);
}

TEST(SparseContractionChain, Float32AgreesWithFloat64ToSinglePrecision) {
  for (int correlation = 1; correlation <= 3; ++correlation) {
    SCOPED_TRACE("correlation " + std::to_string(correlation));
    const ChainInputs in = chain_inputs(Irrep{2, 1}, correlation, 19, 3);
    const ChainDerivatives single = chain_derivatives(true, in, at::kFloat, true, false);
    const ChainDerivatives reference = chain_derivatives(false, in, at::kDouble, true, false);
    EXPECT_EQ(single.out.scalar_type(), at::kFloat);
    expect_close(single, reference, 1e-5);
  }
}

TEST(SparseContractionChain, ResultsDoNotDependOnTheThreadCount) {
  const ChainInputs in = chain_inputs(Irrep{0, 1}, 3, 301, 7);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const ChainDerivatives one = chain_derivatives(true, in, at::kDouble, true, false);
  at::set_num_threads(2);
  const ChainDerivatives two = chain_derivatives(true, in, at::kDouble, true, false);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one.out, two.out));
  EXPECT_TRUE(at::equal(one.grad_x, two.grad_x));
  for (size_t k = 0; k < one.grad_thetas.size(); ++k) EXPECT_TRUE(at::equal(one.grad_thetas[k], two.grad_thetas[k]));
}

// 301 rows: whole blocks of lanes and a last, partial one.
TEST(SparseContractionChain, BaselineAndWideVectorCodeAgree) {
  for (at::ScalarType dtype : {at::kDouble, at::kFloat}) {
    const ChainInputs in = chain_inputs(Irrep{1, -1}, 3, 301, 13);
    set_wide_vector_units_enabled(false);
    const ChainDerivatives baseline = chain_derivatives(true, in, dtype, true, false);
    set_wide_vector_units_enabled(true);
    expect_close(baseline, chain_derivatives(true, in, dtype, true, false), dtype == at::kDouble ? 1e-14 : 1e-6);
  }
}

// Plans are kept per set of U matrices; each must still describe the U it is used with: U made at
// the address of a freed one (the allocator may hand the new tensors the old blocks), and U
// changed in place (a state_dict loaded over it).
TEST(SparseContractionChain, NewOrChangedUMatricesGetTheirOwnPlan) {
  const ChainInputs in = chain_inputs(Irrep{1, -1}, 3, 17, 9);
  const auto expect_like_composite = [&](const ChainInputs& scaled) {
    expect_close(chain_derivatives(true, scaled, at::kDouble, true, false),
                 chain_derivatives(false, scaled, at::kDouble, true, false), 1e-13);
  };
  for (double factor : {1.0, 3.0, 1.0, 3.0}) {
    ChainInputs scaled = in;
    scaled.us.clear();
    for (const at::Tensor& u : in.us) scaled.us.push_back(u * factor);
    expect_like_composite(scaled);
  }
  ChainInputs changed = in;
  changed.us = {in.us[0].clone(), in.us[1].clone(), in.us[2].clone()};
  expect_like_composite(changed);
  changed.us[0].mul_(-2.0);
  expect_like_composite(changed);
}

TEST(SparseContractionChain, InputsThatDoNotFitAreErrors) {
  const Irreps coupling = Irreps::spherical_harmonics(1);
  const at::Tensor u2 = e3nn::mace_u_matrix(coupling, Irrep{0, 1}, 2);  // [4, 4, 2]
  const at::Tensor u1 = e3nn::mace_u_matrix(coupling, Irrep{0, 1}, 1);  // [4, 1]
  const at::Tensor x = at::randn({5, 4}, at::kDouble);
  const at::Tensor theta2 = at::randn({5, 2}, at::kDouble), theta1 = at::randn({5, 1}, at::kDouble);
  EXPECT_NO_THROW(sparse_contraction_chain(x, {theta2, theta1}, {u2, u1}));
  EXPECT_THROW(sparse_contraction_chain(x, {theta2}, {u2, u1}), Error);                          // θ missing
  EXPECT_THROW(sparse_contraction_chain(x, {at::randn({5, 3}, at::kDouble)}, {u2}), Error);       // P wrong
  EXPECT_THROW(sparse_contraction_chain(x, {at::randn({4, 2}, at::kDouble)}, {u2}), Error);       // rows wrong
  EXPECT_THROW(sparse_contraction_chain(x, {theta1, theta2}, {u1, u2}), Error);                   // order reversed
  EXPECT_THROW(sparse_contraction_chain(x.view({20}), {theta2}, {u2}), Error);                    // x not [R, L]
  EXPECT_THROW(sparse_contraction_chain(x, {}, {}), Error);                                       // no step
}

// The whole SymmetricContraction (every output irrep, correlations 1 to 3, several elements)
// through the sparse chain: values and the derivatives with respect to features, node attributes
// and weights.
TEST(SparseContractionChain, SymmetricContractionThroughEitherChainAgrees) {
  const Irreps features_irreps("3x0e+3x1o+3x2e");
  for (int correlation = 1; correlation <= 3; ++correlation) {
    SCOPED_TRACE("correlation " + std::to_string(correlation));
    at::manual_seed(2);
    e3nn::SymmetricContraction contraction(features_irreps, features_irreps, correlation, 3);
    const at::Tensor x = at::randn({29, 3, 9}, at::kDouble).requires_grad_();
    const at::Tensor attrs = at::randn({29, 3}, at::kDouble).requires_grad_();
    const at::Tensor probe = at::randn({29, 3 * 9}, at::kDouble);
    std::vector<at::Tensor> wrt{x, attrs};
    for (const at::Tensor& p : contraction->parameters()) wrt.push_back(p);
    auto run = [&](const e3nn::ContractionChain& chain) {
      const at::Tensor out = contraction->forward(x, attrs, chain);
      std::vector<at::Tensor> results{out.detach()};
      for (const at::Tensor& g : torch::autograd::grad({(out * probe).sum()}, wrt)) results.push_back(g);
      return results;
    };
    const KernelCounters before = contraction_counters();
    const std::vector<at::Tensor> sparse = run(sparse_contraction_chain);
    EXPECT_EQ(contraction_counters().forward_calls - before.forward_calls, 3);  // one chain per output irrep
    const std::vector<at::Tensor> composite = run(e3nn::composite_contraction_chain);
    ASSERT_EQ(sparse.size(), composite.size());
    for (size_t k = 0; k < sparse.size(); ++k) EXPECT_LE(relative_error(sparse[k], composite[k]), 1e-12) << k;
  }
}

}  // namespace
}  // namespace klay::kernels
