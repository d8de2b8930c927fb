// The o3.Linear kernel against the module's composite forward: values and the gradients with respect
// to the features and the weight to rounding in float64 over irreps with repeated entries, outputs
// without a path, inputs no output reads, multiplicities 0 to 32 and lmax 0 to 3; the restricted
// forward, and that of some output columns; float32 to its precision; second derivatives
// (training) through the composite path; one and two threads.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>
#include <string>
#include <vector>

#include "e3nn/irreps.hpp"
#include "e3nn/linear.hpp"
#include "kernels/linear.hpp"
#include "kernels/relative_error.hpp"
#include "kernels/uvu_convolution.hpp"
#include "kernels/vector_units.hpp"

namespace klay::kernels {
namespace {

using e3nn::Irrep;
using e3nn::Irreps;

struct Pair {
  std::string in, out;
};

std::vector<Pair> irreps_pairs() {
  return {
      {"1x0e", "1x0e"},
      {"3x0e + 2x1o + 4x0e + 1x2e", "2x0e + 5x1o + 3x2e + 1x3o"},  // 3o has no path
      {"8x0e + 8x1o + 8x2e + 8x3o", "8x0e + 8x1o + 8x2e + 8x3o"},
      {"32x0e + 16x1o", "32x0e + 16x1o + 32x0e + 1x1e"},           // 0e twice, 1e without a path
      {"2x1o + 0x0e + 3x1o + 5x0e", "4x1o + 2x0e + 1x1o + 0x2e"},  // entries of multiplicity 0
      {"4x0e + 3x2o + 6x0e", "5x0e"},                              // 2o is read by no output
      {"16x0e + 16x1o + 16x2e", "16x0e + 16x1o + 16x2e"},          // examples/si's width
      {"2x0e + 2x1e", "3x1e + 2x0e"},
  };
}

struct Derivatives {
  at::Tensor out, grad_x, grad_weight, second_weight;
};

// The forward, d(probe·out)/d(features, weight), and with `second_order` d/d(weight) of a probe of
// the features' gradient (the force loss's derivative in training).
// With `columns` (and `only`), the kernel computes those output columns, the composite all of
// `only`'s times `mask` ([width_out], 1 on the columns the kernel is to compute).
Derivatives derivatives(const e3nn::LinearImpl& linear, const at::Tensor& features, const std::vector<Irrep>* only,
                        bool fused, bool second_order, const std::vector<int64_t>* columns = nullptr,
                        const at::Tensor& mask = {}) {
  const at::Tensor x = features.detach().clone().requires_grad_();
  at::Tensor out;
  if (fused)
    out = columns ? kernels::linear(linear, x, *only, *columns)
                  : (only ? kernels::linear(linear, x, *only) : kernels::linear(linear, x));
  else
    out = linear.forward_with_weight(x, linear.weight, only);
  if (!fused && mask.defined()) out = out * mask;
  // Probes formed in float64 so that float32 runs weigh the same entries the same.
  const at::Tensor probe = at::sin(at::arange(out.numel(), at::kDouble) * 0.37 + 0.1).to(out.dtype()).view_as(out);
  const auto first = torch::autograd::grad({(out * probe).sum()}, {x, linear.weight}, {}, /*retain_graph=*/true,
                                           /*create_graph=*/second_order, /*allow_unused=*/true);
  Derivatives d{out.detach(), first[0].detach(), first[1].defined() ? first[1].detach() : at::Tensor(), {}};
  if (second_order) {
    const at::Tensor probe_x = at::cos(at::arange(first[0].numel(), at::kDouble)).to(x.dtype()).view_as(first[0]);
    d.second_weight = torch::autograd::grad({(first[0] * probe_x).sum()}, {linear.weight})[0].detach();
  }
  return d;
}

void expect_same(const Derivatives& kernel, const Derivatives& composite, double tolerance) {
  EXPECT_EQ(kernel.out.sizes(), composite.out.sizes());
  EXPECT_LE(relative_error(kernel.out, composite.out), tolerance);
  EXPECT_LE(relative_error(kernel.grad_x, composite.grad_x), tolerance);
  ASSERT_EQ(kernel.grad_weight.defined(), composite.grad_weight.defined());
  if (composite.grad_weight.defined() && composite.grad_weight.numel() > 0) {
    EXPECT_LE(relative_error(kernel.grad_weight, composite.grad_weight), tolerance);
  }
}

e3nn::Linear make_linear(const Pair& pair, at::ScalarType dtype, uint64_t seed) {
  at::manual_seed(seed);
  return e3nn::Linear(Irreps(pair.in), Irreps(pair.out), dtype);
}

TEST(LinearKernel, MatchesTheCompositeForwardAndItsGradients) {
  uint64_t seed = 1;
  for (const Pair& pair : irreps_pairs()) {
    SCOPED_TRACE(pair.in + " -> " + pair.out);
    const e3nn::Linear linear = make_linear(pair, at::kDouble, seed++);
    const at::Tensor features = at::randn({37, Irreps(pair.in).dim()}, at::kDouble);
    const KernelCounters before = linear_counters();
    const Derivatives kernel = derivatives(*linear, features, nullptr, true, false);
    const KernelCounters after = linear_counters();
    EXPECT_EQ(after.forward_calls - before.forward_calls, 1);
    EXPECT_EQ(after.backward_calls - before.backward_calls, 1);
    expect_same(kernel, derivatives(*linear, features, nullptr, false, false), 1e-12);
  }
}

// The baseline x86-64 entry points (gathers, products, scatters) and the widest the CPU has: the
// same values and gradients to rounding.
TEST(LinearKernel, BaselineAndWideVectorCodeAgree) {
  uint64_t seed = 21;
  for (const Pair& pair : irreps_pairs()) {
    SCOPED_TRACE(pair.in + " -> " + pair.out);
    const e3nn::Linear linear = make_linear(pair, at::kDouble, seed++);
    const at::Tensor features = at::randn({37, Irreps(pair.in).dim()}, at::kDouble);
    set_wide_vector_units_enabled(false);
    const Derivatives baseline = derivatives(*linear, features, nullptr, true, false);
    set_wide_vector_units_enabled(true);
    expect_same(derivatives(*linear, features, nullptr, true, false), baseline, 1e-14);
  }
}

// Memory the allocator hands out again holds NaN first: the zeros must be written, not found.
TEST(LinearKernel, OutputsWithoutAPathAreZeroAndUnreadInputsGetNoGradient) {
  const e3nn::Linear linear = make_linear({"3x0e + 2x2o + 1x1o", "2x1o + 4x3e + 1x0e"}, at::kDouble, 3);
  const at::Tensor features = at::randn({11, linear->irreps_in().dim()}, at::kDouble);
  {
    std::vector<at::Tensor> poisoned;
    for (int k = 0; k < 8; ++k) {
      poisoned.push_back(at::full({11, linear->irreps_out().dim()}, std::nan(""), at::kDouble));
      poisoned.push_back(at::full_like(features, std::nan("")));
    }
  }
  const Derivatives kernel = derivatives(*linear, features, nullptr, true, false);
  // 3e (columns 6 to 33) has no input, 2o (columns 3 to 12 of the input) no output.
  EXPECT_TRUE(at::equal(kernel.out.narrow(1, 6, 28), at::zeros({11, 28}, at::kDouble)));
  EXPECT_TRUE(at::equal(kernel.grad_x.narrow(1, 3, 10), at::zeros({11, 10}, at::kDouble)));
  EXPECT_GT(kernel.out.narrow(1, 0, 6).abs().max().item<double>(), 0.0);
  EXPECT_GT(kernel.out.narrow(1, 34, 1).abs().max().item<double>(), 0.0);
}

TEST(LinearKernel, RestrictedForwardMatchesTheComposite) {
  const Pair pair{"3x0e + 2x1o + 4x0e + 1x2e + 2x1o", "2x0e + 5x1o + 3x2e + 1x1o"};
  const e3nn::Linear linear = make_linear(pair, at::kDouble, 7);
  for (const std::vector<Irrep>& only :
       {std::vector<Irrep>{Irrep{0, 1}}, std::vector<Irrep>{Irrep{1, -1}}, std::vector<Irrep>{Irrep{2, 1}, Irrep{0, 1}},
        std::vector<Irrep>{Irrep{1, -1}, Irrep{2, 1}}}) {
    SCOPED_TRACE(only.front().to_string());
    const at::Tensor features = at::randn({23, linear->irreps_in().keeping(only).dim()}, at::kDouble);
    const KernelCounters before = linear_counters();
    const Derivatives kernel = derivatives(*linear, features, &only, true, false);
    EXPECT_EQ(linear_counters().forward_calls - before.forward_calls, 1);
    expect_same(kernel, derivatives(*linear, features, &only, false, false), 1e-12);
    const Derivatives second = derivatives(*linear, features, &only, true, true);
    EXPECT_LE(relative_error(second.second_weight, derivatives(*linear, features, &only, false, true).second_weight),
              1e-12);
  }
}

// A gate's activated scalars share their irrep (and, simplified, their entry) with its gates:
// linear_2 of the examples/si model's last convolution computes the scalars' channels only.
TEST(LinearKernel, OutputColumnsAreComputedWholeChannelsAndZeroElsewhere) {
  const e3nn::Linear linear = make_linear({"5x0e + 2x1o + 3x0e", "6x0e + 3x1o + 4x0e"}, at::kDouble, 17);
  struct Case {
    std::vector<Irrep> only;
    std::vector<int64_t> columns, computed;  // asked for; the columns of the channels holding them
  };
  // Output columns: 0e 0-5, 1o channels 6-8, 9-11, 12-14, 0e 15-18.
  for (const Case& c : std::vector<Case>{
           {{Irrep{0, 1}}, {1, 2, 3, 16}, {1, 2, 3, 16}},
           {{Irrep{0, 1}}, {16, 3, 1, 2, 3}, {1, 2, 3, 16}},  // in any order, repeated
           {{Irrep{0, 1}, Irrep{1, -1}}, {0, 7, 14, 17}, {0, 6, 7, 8, 12, 13, 14, 17}},
       }) {
    SCOPED_TRACE(c.columns.size());
    at::Tensor mask = at::zeros({linear->irreps_out().dim()}, at::kDouble);
    for (int64_t column : c.computed) mask[column] = 1.0;
    const at::Tensor features = at::randn({19, linear->irreps_in().keeping(c.only).dim()}, at::kDouble);
    {
      std::vector<at::Tensor> poisoned;
      for (int k = 0; k < 8; ++k)
        poisoned.push_back(at::full({19, linear->irreps_out().dim()}, std::nan(""), at::kDouble));
    }
    const KernelCounters before = linear_counters();
    const Derivatives kernel = derivatives(*linear, features, &c.only, true, false, &c.columns);
    const KernelCounters after = linear_counters();
    EXPECT_EQ(after.forward_calls - before.forward_calls, 1);
    EXPECT_EQ(after.backward_calls - before.backward_calls, 1);
    const Derivatives composite = derivatives(*linear, features, &c.only, false, false, nullptr, mask);
    expect_same(kernel, composite, 1e-12);
    EXPECT_TRUE(at::equal(kernel.out * (1 - mask), at::zeros_like(kernel.out)));
    EXPECT_GT(kernel.out.index_select(1, at::tensor(c.computed, at::kLong)).abs().amax(0).min().item<double>(), 0.0);
    const Derivatives second = derivatives(*linear, features, &c.only, true, true, &c.columns);
    EXPECT_LE(relative_error(second.second_weight,
                             derivatives(*linear, features, &c.only, false, true, nullptr, mask).second_weight),
              1e-12);
  }
}

TEST(LinearKernel, KeepsLeadingDimensions) {
  const e3nn::Linear linear = make_linear({"4x0e + 2x1o", "3x0e + 2x1o"}, at::kDouble, 9);
  const at::Tensor features = at::randn({2, 5, linear->irreps_in().dim()}, at::kDouble);
  const Derivatives kernel = derivatives(*linear, features, nullptr, true, false);
  EXPECT_EQ(kernel.out.sizes(), (std::vector<int64_t>{2, 5, linear->irreps_out().dim()}));
  expect_same(kernel, derivatives(*linear, features, nullptr, false, false), 1e-12);
}

TEST(LinearKernel, WrongWidthIsReported) {
  const e3nn::Linear linear = make_linear({"4x0e + 2x1o", "3x0e"}, at::kDouble, 2);
  try {
    kernels::linear(*linear, at::zeros({3, 9}, at::kDouble));
    FAIL() << "no error for features of width 9";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("expected 10"), std::string::npos) << e.what();
  }
}

TEST(LinearKernel, SecondDerivativesGoThroughTheCompositeForward) {
  for (const Pair& pair : {irreps_pairs()[1], irreps_pairs()[3]}) {
    SCOPED_TRACE(pair.in + " -> " + pair.out);
    const e3nn::Linear linear = make_linear(pair, at::kDouble, 5);
    const at::Tensor features = at::randn({17, Irreps(pair.in).dim()}, at::kDouble);
    const KernelCounters before = linear_counters();
    const Derivatives kernel = derivatives(*linear, features, nullptr, true, true);
    const KernelCounters after = linear_counters();
    const Derivatives composite = derivatives(*linear, features, nullptr, false, true);
    EXPECT_EQ(after.forward_calls - before.forward_calls, 1);
    EXPECT_EQ(after.composite_backward_calls - before.composite_backward_calls, 1);
    expect_same(kernel, composite, 1e-12);
    EXPECT_LE(relative_error(kernel.second_weight, composite.second_weight), 1e-12);
  }
}

TEST(LinearKernel, Float32AgreesWithFloat64ToSinglePrecision) {
  const Pair pair = irreps_pairs()[2];
  const e3nn::Linear reference = make_linear(pair, at::kDouble, 13);
  const e3nn::Linear single = make_linear(pair, at::kFloat, 13);
  {
    const at::NoGradGuard no_grad;
    single->weight.copy_(reference->weight);
  }
  const at::Tensor features = at::randn({29, Irreps(pair.in).dim()}, at::kDouble);
  const Derivatives kernel = derivatives(*single, features.to(at::kFloat), nullptr, true, false);
  const Derivatives composite = derivatives(*reference, features, nullptr, false, false);
  EXPECT_EQ(kernel.out.scalar_type(), at::kFloat);
  expect_same(kernel, composite, 1e-5);
}

TEST(LinearKernel, OneAndTwoThreadsMatchTheComposite) {
  const Pair pair = irreps_pairs()[6];
  const e3nn::Linear linear = make_linear(pair, at::kDouble, 17);
  const at::Tensor features = at::randn({1400, Irreps(pair.in).dim()}, at::kDouble);
  const Derivatives composite = derivatives(*linear, features, nullptr, false, false);
  const int threads = at::get_num_threads();
  for (int n : {1, 2}) {
    SCOPED_TRACE(std::to_string(n) + " threads");
    at::set_num_threads(n);
    expect_same(derivatives(*linear, features, nullptr, true, false), composite, 1e-12);
  }
  at::set_num_threads(threads);
}

TEST(LinearKernel, SwitchedOffRunsTheComposite) {
  const e3nn::Linear linear = make_linear(irreps_pairs()[1], at::kDouble, 19);
  const at::Tensor features = at::randn({5, linear->irreps_in().dim()}, at::kDouble);
  set_fused_kernels_enabled(false);
  const KernelCounters before = linear_counters();
  const Derivatives off = derivatives(*linear, features, nullptr, true, false);
  const KernelCounters after = linear_counters();
  set_fused_kernels_enabled(true);
  EXPECT_EQ(after.forward_calls, before.forward_calls);
  EXPECT_EQ(after.backward_calls, before.backward_calls);
  expect_same(off, derivatives(*linear, features, nullptr, false, false), 0.0);
}

}  // namespace
}  // namespace klay::kernels
