// The self-connection kernel against the tensor product's own forward (the composite path): values,
// first derivatives (features, attributes, weights), second derivatives (training's force loss),
// restricted products, float32 and any thread count, over several irreps, multiplicities 1 to 32,
// l 0 to 3, both parities and scalar attributes of either parity, one-hot or not.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>
#include <string>
#include <vector>

#include "e3nn/irreps.hpp"
#include "e3nn/tensor_product.hpp"
#include "kernels/relative_error.hpp"
#include "kernels/self_connection.hpp"
#include "kernels/uvu_convolution.hpp"

namespace klay::kernels {
namespace {

using e3nn::Irrep;
using e3nn::Irreps;

struct Case {
  std::string in, attrs, out;
};

// NequIP's (features after a ConvNetLayer into the gate's input), MACE's (several elements, one
// output multiplicity), every l to 3 of both parities, repeated entries, 0o attributes, outputs
// that no path reaches and features that reach no output.
std::vector<Case> cases() {
  return {{"16x0e+16x2e+16x1o", "1x0e", "16x0e+48x0e+16x1e+16x1o+16x2e+16x2o"},
          {"8x0e", "3x0e", "8x0e+8x1o+8x2e"},
          {"1x0e+2x0o+3x1e+4x1o+5x2e+6x2o+7x3e+8x3o", "2x0e", "3x0e+2x0o+1x1e+3x1o+2x2e+1x2o+4x3e+1x3o"},
          {"32x0e+32x1o+32x2e+32x3o", "4x0e", "32x0e+32x1o+32x2e+32x3o"},
          {"3x0e+2x1o+3x0e+1x1o", "2x0e+1x0o", "4x0e+2x0o+3x1o+1x1e+2x0e"},
          {"5x2o", "1x0e", "1x0e+7x2o"},
          {"4x0e+3x1o+2x2e", "2x0e", "5x0e+3x2e"}};  // the 1o features reach no output
}

e3nn::TensorProduct self_connection_product(const Case& c, uint64_t seed) {
  at::manual_seed(seed);
  return e3nn::fully_connected_tensor_product(Irreps(c.in), Irreps(c.attrs), Irreps(c.out));
}

struct Inputs {
  at::Tensor x, attrs, probe;
};

// Random features; attributes one-hot (elements) or random.
Inputs random_inputs(const e3nn::TensorProductImpl& tp, int64_t rows, bool one_hot, uint64_t seed) {
  at::manual_seed(seed);
  const int64_t width = tp.irreps_in2().dim();
  const at::Tensor attrs = one_hot ? at::one_hot(at::randint(0, width, {rows}, at::kLong), width).to(at::kDouble)
                                   : at::randn({rows, width}, at::kDouble);
  return {at::randn({rows, tp.irreps_in1().dim()}, at::kDouble), attrs,
          at::randn({rows, tp.irreps_out().dim()}, at::kDouble)};
}

// The self-connection, d(probe·out)/d(x, attrs, weight), and d/d(weight, attrs) of a probe of the
// feature gradient: what the force loss of a fit differentiates.
struct Derivatives {
  at::Tensor out, grad_x, grad_attrs, grad_w, second_w, second_attrs;
};

// `restricted` (optional) is a restriction of tp whose weights are picked out of tp's.
Derivatives derivatives(bool fused, const e3nn::TensorProductImpl& tp, const Inputs& in, at::ScalarType dtype,
                        bool second_order, const e3nn::RestrictedTensorProduct* restricted = nullptr) {
  set_fused_kernels_enabled(fused);
  const at::Tensor x = in.x.to(dtype).requires_grad_(), attrs = in.attrs.to(dtype).requires_grad_();
  const at::Tensor& w = tp.weight;
  const at::Tensor out = restricted ? self_connection(*restricted->tp, x, attrs,
                                                      w.index_select(0, restricted->weight_columns))
                                    : self_connection(tp, x, attrs);
  const at::Tensor loss = (out * in.probe.to(dtype)).sum();
  const auto first = torch::autograd::grad({loss}, {x, attrs, w}, {}, /*retain_graph=*/true, second_order);
  Derivatives d{out.detach(), first[0].detach(), first[1].detach(), first[2].detach(), {}, {}};
  if (second_order) {
    const at::Tensor probe_x = at::cos(at::arange(first[0].numel(), first[0].options())).view_as(first[0]);
    const auto second = torch::autograd::grad({(first[0] * probe_x).sum()}, {w, attrs});
    d.second_w = second[0].detach();
    d.second_attrs = second[1].detach();
  }
  set_fused_kernels_enabled(true);
  return d;
}

void expect_close(const Derivatives& a, const Derivatives& reference, double tolerance) {
  EXPECT_LE(relative_error(a.out, reference.out), tolerance);
  EXPECT_LE(relative_error(a.grad_x, reference.grad_x), tolerance);
  EXPECT_LE(relative_error(a.grad_attrs, reference.grad_attrs), tolerance);
  EXPECT_LE(relative_error(a.grad_w, reference.grad_w), tolerance);
}

TEST(SelfConnection, MatchesTheTensorProductAndItsGradients) {
  for (const Case& c : cases()) {
    for (bool one_hot : {true, false}) {
      SCOPED_TRACE(c.in + " x " + c.attrs + " -> " + c.out + (one_hot ? ", one-hot" : ", random attributes"));
      const e3nn::TensorProduct tp = self_connection_product(c, 3);
      ASSERT_TRUE(self_connection_supports(*tp));
      const Inputs in = random_inputs(*tp, 37, one_hot, 7);
      const KernelCounters before = self_connection_counters();
      const Derivatives fused = derivatives(true, *tp, in, at::kDouble, false);
      const KernelCounters after = self_connection_counters();
      EXPECT_EQ(after.forward_calls - before.forward_calls, 1);
      EXPECT_EQ(after.backward_calls - before.backward_calls, 1);
      const Derivatives composite = derivatives(false, *tp, in, at::kDouble, false);
      EXPECT_EQ(self_connection_counters().forward_calls, after.forward_calls);  // switched off: the module
      expect_close(fused, composite, 1e-12);
    }
  }
}

// The feature gradient is written, not summed into zeros: each entry by its first path, or zeros
// where no path reads it. Memory the allocator hands out again holds NaN first, so an entry the
// backward missed would show.
TEST(SelfConnection, EveryEntryOfTheFeatureGradientIsWritten) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.in + " x " + c.attrs + " -> " + c.out);
    const e3nn::TensorProduct tp = self_connection_product(c, 3);
    const Inputs in = random_inputs(*tp, 37, true, 7);
    const Derivatives composite = derivatives(false, *tp, in, at::kDouble, false);
    {
      std::vector<at::Tensor> poisoned;
      for (int k = 0; k < 8; ++k) poisoned.push_back(at::full_like(in.x, std::nan("")));
    }
    const Derivatives fused = derivatives(true, *tp, in, at::kDouble, false);
    EXPECT_TRUE(at::isfinite(fused.grad_x).all().item<bool>());
    EXPECT_LE(relative_error(fused.grad_x, composite.grad_x), 1e-12);
  }
}

// InteractionBlock's restriction to the scalars (an energy readout): external weights picked out
// of the whole product's, the other outputs zero (written: memory the allocator hands out again
// holds NaN first).
TEST(SelfConnection, RestrictedProductsMatchTheirForward) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.in + " x " + c.attrs + " -> " + c.out);
    const e3nn::TensorProduct tp = self_connection_product(c, 5);
    const std::vector<std::vector<Irrep>> restrictions{{Irrep{0, 1}}, {Irrep{1, -1}, Irrep{2, 1}}};
    for (const std::vector<Irrep>& kept : restrictions) {
      const e3nn::RestrictedTensorProduct restricted = e3nn::restrict_outputs(*tp, kept, /*compact=*/false);
      if (!restricted.tp) continue;
      const Inputs in = random_inputs(*tp, 23, true, 9);
      {
        std::vector<at::Tensor> poisoned;
        for (int k = 0; k < 8; ++k)
          poisoned.push_back(at::full({23, tp->irreps_out().dim()}, std::nan(""), at::kDouble));
      }
      const int64_t calls = self_connection_counters().forward_calls;
      const Derivatives fused = derivatives(true, *tp, in, at::kDouble, false, &restricted);
      EXPECT_EQ(self_connection_counters().forward_calls - calls, 1);
      EXPECT_TRUE(at::isfinite(fused.out).all().item<bool>());
      expect_close(fused, derivatives(false, *tp, in, at::kDouble, false, &restricted), 1e-12);
    }
  }
}

TEST(SelfConnection, SecondDerivativesGoThroughTheTensorProduct) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.in + " x " + c.attrs + " -> " + c.out);
    const e3nn::TensorProduct tp = self_connection_product(c, 13);
    const Inputs in = random_inputs(*tp, 19, false, 2);
    const KernelCounters before = self_connection_counters();
    const Derivatives fused = derivatives(true, *tp, in, at::kDouble, true);
    EXPECT_EQ(self_connection_counters().composite_backward_calls - before.composite_backward_calls, 1);
    const Derivatives composite = derivatives(false, *tp, in, at::kDouble, true);
    expect_close(fused, composite, 1e-12);
    EXPECT_LE(relative_error(fused.second_w, composite.second_w), 1e-12);
    EXPECT_LE(relative_error(fused.second_attrs, composite.second_attrs), 1e-12);
  }
}

TEST(SelfConnection, Float32AgreesWithFloat64ToSinglePrecision) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.in + " x " + c.attrs + " -> " + c.out);
    const e3nn::TensorProduct tp = self_connection_product(c, 17);
    e3nn::TensorProduct single = self_connection_product(c, 17);
    single->to(at::kFloat);
    const Inputs in = random_inputs(*tp, 41, true, 4);
    const int64_t calls = self_connection_counters().forward_calls;
    const Derivatives d = derivatives(true, *single, in, at::kFloat, false);
    EXPECT_EQ(self_connection_counters().forward_calls - calls, 1);
    EXPECT_EQ(d.out.scalar_type(), at::kFloat);
    expect_close(d, derivatives(false, *tp, in, at::kDouble, false), 2e-6);
  }
}

TEST(SelfConnection, ResultsDoNotDependOnTheThreadCount) {
  const e3nn::TensorProduct tp = self_connection_product(cases()[3], 23);
  const Inputs in = random_inputs(*tp, 500, true, 8);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const Derivatives one = derivatives(true, *tp, in, at::kDouble, false);
  at::set_num_threads(2);
  const Derivatives two = derivatives(true, *tp, in, at::kDouble, false);
  at::set_num_threads(threads);
  expect_close(one, two, 1e-14);
}

// add_self_connection(sum, ...) against sum + the composite product: values, the gradients of
// the features, attributes, weights and of `sum` itself, and second derivatives; written into
// sum's storage where sum is a plain intermediate, a new tensor where it is a view or a leaf.
TEST(SelfConnection, AddingIntoASumMatchesTheSumOfBoth) {
  const Case c = cases()[0];
  const e3nn::TensorProduct tp = self_connection_product(c, 29);
  const Inputs in = random_inputs(*tp, 31, true, 6);
  const at::Tensor base = at::randn({31, tp->irreps_out().dim()}, at::kDouble);
  enum class Sum { Intermediate, View, Leaf };
  for (const Sum kind : {Sum::Intermediate, Sum::View, Sum::Leaf}) {
    for (const bool second_order : {false, true}) {
      SCOPED_TRACE(std::to_string(static_cast<int>(kind)) + (second_order ? ", second order" : ""));
      std::vector<at::Tensor> results[2];
      for (const bool fused : {true, false}) {
        set_fused_kernels_enabled(fused);
        const at::Tensor x = in.x.clone().requires_grad_(), attrs = in.attrs.clone().requires_grad_();
        const at::Tensor b = base.clone().requires_grad_();
        at::Tensor sum = kind == Sum::Leaf ? b : b * 2.0;
        if (kind == Sum::View) sum = sum.view({31, -1});
        const void* storage = sum.data_ptr();
        const at::Tensor out = add_self_connection(sum, *tp, x, attrs);
        if (fused) {
          EXPECT_EQ(out.data_ptr() == storage, kind == Sum::Intermediate);
        }
        const at::Tensor loss = (out * in.probe).sum();
        const auto first = torch::autograd::grad({loss}, {x, attrs, tp->weight, b}, {}, true, second_order);
        std::vector<at::Tensor> r{out.detach(), first[0].detach(), first[1].detach(), first[2].detach(),
                                  first[3].detach()};
        if (second_order) {
          const auto second = torch::autograd::grad({(first[0] * first[0]).sum()}, {tp->weight, attrs});
          r.push_back(second[0].detach());
          r.push_back(second[1].detach());
        }
        results[fused ? 0 : 1] = r;
      }
      set_fused_kernels_enabled(true);
      ASSERT_EQ(results[0].size(), results[1].size());
      for (size_t k = 0; k < results[0].size(); ++k) EXPECT_LE(relative_error(results[0][k], results[1][k]), 1e-12) << k;
    }
  }
}

TEST(SelfConnection, OtherProductsRunTheirForward) {
  // A second operand that is not scalars (E3Attention's key product with the spherical harmonics).
  at::manual_seed(1);
  const e3nn::TensorProduct tp =
      e3nn::fully_connected_tensor_product(Irreps("3x0e+2x1o"), Irreps::spherical_harmonics(1), Irreps("2x0e+2x1o"));
  EXPECT_FALSE(self_connection_supports(*tp));
  const Inputs in = random_inputs(*tp, 6, false, 3);
  const int64_t calls = self_connection_counters().forward_calls;
  const Derivatives d = derivatives(true, *tp, in, at::kDouble, false);
  EXPECT_EQ(self_connection_counters().forward_calls, calls);
  EXPECT_TRUE(at::equal(d.out, tp->forward(in.x, in.attrs).detach()));
}

TEST(SelfConnection, InputsThatDoNotFitAreErrors) {
  const e3nn::TensorProduct tp = self_connection_product(cases()[1], 1);
  EXPECT_ANY_THROW(self_connection(*tp, at::randn({4, 7}, at::kDouble), at::randn({4, 3}, at::kDouble)));
  EXPECT_ANY_THROW(self_connection(*tp, at::randn({4, 8}, at::kDouble), at::randn({4, 2}, at::kDouble)));
}

}  // namespace
}  // namespace klay::kernels
