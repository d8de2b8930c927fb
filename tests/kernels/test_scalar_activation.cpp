// ScaledActivation::apply, the batched activations the gate and radial MLP kernels run, against
// ATen's operators and their autograd derivatives, element by element: every activation, both
// types, values or derivatives or both, in place, lengths that leave partial vectors, with and
// without the wide vector units, and batches holding values whose exponentials lie outside the
// vectorized range (overflow, subnormal results, infinities, NaN).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/scalar_activation.hpp"
#include "kernels/vector_units.hpp"

namespace klay::kernels {
namespace {

using Kind = ScaledActivation::Kind;

// The activation as e3nn names it, through ATen (the composite path's operators).
at::Tensor aten_activation(Kind kind, const at::Tensor& x) {
  switch (kind) {
    case Kind::identity: return x * 1.0;
    case Kind::silu: return at::silu(x);
    case Kind::ssp: return at::softplus(x, 1, 20) - std::log(2.0);
    case Kind::tanh: return at::tanh(x);
    case Kind::abs: return at::abs(x);
    case Kind::sigmoid: return at::sigmoid(x);
    case Kind::relu: return at::relu(x);
  }
  return {};
}

const std::vector<std::pair<Kind, std::string>> kKinds = {
    {Kind::identity, "identity"}, {Kind::silu, "silu"}, {Kind::ssp, "ssp"},     {Kind::tanh, "tanh"},
    {Kind::abs, "abs"},           {Kind::sigmoid, "sigmoid"}, {Kind::relu, "relu"}};

// Elementwise: equal (NaN with NaN), or |a − b| ≤ tolerance·max(1, |b|), the conformance cases' measure:
// f' of tanh and SiLU, and SSP, cancel near their zeros.
void expect_close(const at::Tensor& a, const at::Tensor& b, double tolerance, const std::string& what) {
  const at::Tensor ad = a.to(at::kDouble), bd = b.to(at::kDouble), xd = ad.contiguous(), yd = bd.contiguous();
  const double* p = xd.data_ptr<double>();
  const double* q = yd.data_ptr<double>();
  for (int64_t i = 0; i < xd.numel(); ++i) {
    if (std::isnan(p[i]) && std::isnan(q[i])) continue;
    if (p[i] == q[i]) continue;
    ASSERT_LE(std::abs(p[i] - q[i]), tolerance * std::max(std::abs(q[i]), 1.0))
        << what << ": element " << i << " is " << p[i] << ", ATen gives " << q[i];
  }
}

// apply() on x, in each of its modes, against ATen's values and derivatives times the scale.
void check(Kind kind, const std::string& name, const at::Tensor& x, double tolerance) {
  const double scale = 1.6791767923989418;
  const ScaledActivation act{kind, scale};
  const at::Tensor leaf = x.detach().clone().requires_grad_(true);
  const at::Tensor reference = aten_activation(kind, leaf);
  const at::Tensor reference_derivative = torch::autograd::grad({reference.sum()}, {leaf})[0] * scale;
  const at::Tensor reference_value = reference.detach() * scale;
  const int64_t n = x.numel();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "check", [&] {
    at::Tensor values = at::empty_like(x), derivatives = at::empty_like(x);
    act.apply(x.data_ptr<scalar_t>(), values.data_ptr<scalar_t>(), derivatives.data_ptr<scalar_t>(), n);
    expect_close(values, reference_value, tolerance, name + " values (both)");
    expect_close(derivatives, reference_derivative, tolerance, name + " derivatives (both)");

    at::Tensor only = at::empty_like(x);
    act.apply(x.data_ptr<scalar_t>(), only.data_ptr<scalar_t>(), static_cast<scalar_t*>(nullptr), n);
    EXPECT_TRUE(at::equal(only.nan_to_num(), values.nan_to_num())) << name << ": values alone differ";
    act.apply(x.data_ptr<scalar_t>(), static_cast<scalar_t*>(nullptr), only.data_ptr<scalar_t>(), n);
    EXPECT_TRUE(at::equal(only.nan_to_num(), derivatives.nan_to_num())) << name << ": derivatives alone differ";

    at::Tensor in_place = x.clone();
    act.apply(in_place.data_ptr<scalar_t>(), in_place.data_ptr<scalar_t>(), only.data_ptr<scalar_t>(), n);
    EXPECT_TRUE(at::equal(in_place.nan_to_num(), values.nan_to_num())) << name << ": in place differs";
    EXPECT_TRUE(at::equal(only.nan_to_num(), derivatives.nan_to_num())) << name << ": derivatives in place differ";
  });
}

// Normal values, spread past ssp's threshold (20), 1000 of them and a length leaving a partial vector.
at::Tensor spread(at::ScalarType type, int64_t n, uint64_t seed) {
  at::manual_seed(seed);
  return (at::randn({n}, at::kDouble) * 12.0).to(type);
}

at::Tensor with_extremes(at::ScalarType type) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> v{0.0,   -0.0,   20.0,   20.000001, -20.0, 35.0,  -35.0, 708.0, -708.0, 708.5, -708.5,
                        709.5, -709.5, 745.5,  -745.5,    1e300, -1e300, inf,  -inf,  std::nan(""), 1e-310, -3.0};
  return at::tensor(v, at::kDouble).to(type);
}

class ScalarActivationUnits : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { set_wide_vector_units_enabled(GetParam()); }
  void TearDown() override { set_wide_vector_units_enabled(true); }
};

TEST_P(ScalarActivationUnits, MatchesAtenFloat64) {
  for (const auto& [kind, name] : kKinds) {
    check(kind, name, spread(at::kDouble, 1000, 1), 1e-14);
    check(kind, name, spread(at::kDouble, 13, 2), 1e-14);
  }
}

TEST_P(ScalarActivationUnits, MatchesAtenFloat32) {
  for (const auto& [kind, name] : kKinds) {
    check(kind, name, spread(at::kFloat, 1000, 3), 4e-7);
    check(kind, name, spread(at::kFloat, 13, 4), 4e-7);
  }
}

// A batch with values past the vectorized exponential's range takes glibc's exponentials.
TEST_P(ScalarActivationUnits, ValuesPastTheVectorizedRange) {
  for (const auto& [kind, name] : kKinds) {
    check(kind, name, at::cat({spread(at::kDouble, 40, 5), with_extremes(at::kDouble)}), 1e-14);
    check(kind, name, at::cat({spread(at::kFloat, 40, 6), with_extremes(at::kFloat)}), 4e-7);
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, ScalarActivationUnits, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "WideUnits" : "Baseline"; });

}  // namespace
}  // namespace klay::kernels
