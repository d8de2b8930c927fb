// PolynomialCutoff, BesselBasis, RadialBasisEdgeEncoding (docs/layers.md#radial-basis): values from the
// formulas at hand-picked points, state_dict layout, autograd vs central differences, config
// errors. Numbers against Python: layer_{PolynomialCutoff,BesselBasis,RadialBasisEdgeEncoding}_*.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "conv_layer_testing.hpp"

namespace klay::testing {
namespace {

at::Tensor lengths(std::vector<double> values) { return at::tensor(values, f64()); }

TEST(PolynomialCutoff, FormulaAtHandPickedPoints) {
  auto layer = build_layer("PolynomialCutoff", "{r_max: 2.0}");  // p = 6
  const at::Tensor y = call_tensor(*layer, {lengths({0.0, 1.0, 2.0, 2.5})});
  // u = 0.5: 1 − 28/64 + 48/128 − 21/256 = 0.85546875; u ≥ 1: 0.
  EXPECT_DOUBLE_EQ(y[0].item<double>(), 1.0);
  EXPECT_DOUBLE_EQ(y[1].item<double>(), 0.85546875);
  EXPECT_EQ(y[2].item<double>(), 0.0);
  EXPECT_EQ(y[3].item<double>(), 0.0);
  EXPECT_TRUE(layer->named_parameters().is_empty());
  EXPECT_TRUE(layer->named_buffers().is_empty());
}

TEST(PolynomialCutoff, DegreeThree) {
  auto layer = build_layer("PolynomialCutoff", "{r_max: 4.0, polynomial_degree: 3}");
  // u = 0.25, p = 3: 1 − 10/64 + 15/256 − 6/1024.
  EXPECT_DOUBLE_EQ(call_tensor(*layer, {lengths({1.0})})[0].item<double>(),
                   1.0 - 10.0 / 64.0 + 15.0 / 256.0 - 6.0 / 1024.0);
}

TEST(BesselBasis, FormulaAndStateDict) {
  auto layer = build_layer("BesselBasis", "{r_max: 3.0, num_radial_basis: 3}");
  const at::Tensor y = call_tensor(*layer, {lengths({0.5})});
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{1, 3}));
  // (2/3)·sin(kπ/6)/0.5 for k = 1, 2, 3.
  EXPECT_NEAR(y[0][0].item<double>(), 2.0 / 3.0, 1e-15);
  EXPECT_NEAR(y[0][1].item<double>(), 2.0 / std::sqrt(3.0), 1e-15);
  EXPECT_NEAR(y[0][2].item<double>(), 4.0 / 3.0, 1e-15);

  const auto parameters = layer->named_parameters();
  ASSERT_EQ(parameters.size(), 1u);
  EXPECT_TRUE(at::equal(parameters["bessel_weights"], at::tensor({M_PI, 2 * M_PI, 3 * M_PI}, f64())));
  EXPECT_TRUE(parameters["bessel_weights"].requires_grad());
}

TEST(BesselBasis, NotTrainableIsABufferWithTheSameKey) {
  auto layer = build_layer("BesselBasis", "{r_max: 3.0, num_radial_basis: 2, trainable: false}");
  EXPECT_TRUE(layer->named_parameters().is_empty());
  EXPECT_EQ(layer->named_buffers()["bessel_weights"].sizes(), (std::vector<int64_t>{2}));
}

TEST(RadialBasisEdgeEncoding, IsBasisTimesCutoff) {
  auto layer = build_layer("RadialBasisEdgeEncoding", "{r_max: 2.0, num_radial_basis: 2}");
  const at::Tensor y = call_tensor(*layer, {lengths({1.0, 2.5})});
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 2}));
  // r = 1: Bessel (2/2)·sin(kπ/2)/1 = 1, 0; cutoff at u = 0.5 = 0.85546875. r > r_max: 0.
  EXPECT_NEAR(y[0][0].item<double>(), 0.85546875, 1e-15);
  EXPECT_NEAR(y[0][1].item<double>(), 0.0, 1e-15);
  EXPECT_EQ(y[1][0].item<double>(), 0.0);
  const auto state = layer->named_parameters();
  ASSERT_EQ(state.size(), 1u);
  EXPECT_EQ(state["basis.bessel_weights"].sizes(), (std::vector<int64_t>{2}));
}

TEST(RadialBasisEdgeEncoding, NotTrainableBasis) {
  auto layer =
      build_layer("RadialBasisEdgeEncoding", "{r_max: 3.0, num_radial_basis: 5, radial_basis_trainable: false}");
  EXPECT_TRUE(layer->named_parameters().is_empty());
  EXPECT_EQ(layer->named_buffers()["basis.bessel_weights"].sizes(), (std::vector<int64_t>{5}));
}

TEST(RadialBasisEdgeEncoding, AutogradMatchesCentralDifferences) {
  auto layer = build_layer("RadialBasisEdgeEncoding", "{r_max: 4.0, num_radial_basis: 8, polynomial_degree: 5}");
  const at::Tensor r0 = lengths({0.3, 1.1, 2.7, 3.9});
  const at::Tensor weights = at::linspace(-1.0, 1.0, 8, f64());
  auto loss = [&](const at::Tensor& r) { return (call_tensor(*layer, {r}) * weights).sum(); };
  const at::Tensor r = r0.clone().requires_grad_(true);
  const at::Tensor analytic = torch::autograd::grad({loss(r)}, {r})[0];
  const double h = 1e-6;
  for (int64_t i = 0; i < r0.numel(); ++i) {
    at::Tensor plus = r0.clone(), minus = r0.clone();
    plus[i] += h;
    minus[i] -= h;
    const double numeric = (loss(plus).item<double>() - loss(minus).item<double>()) / (2 * h);
    EXPECT_NEAR(analytic[i].item<double>(), numeric, 1e-7 * std::max(1.0, std::abs(numeric))) << "edge " << i;
  }
}

TEST(RadialBasisEdgeEncoding, ConfigErrors) {
  const std::string missing = build_error("RadialBasisEdgeEncoding", "{num_radial_basis: 4}");
  EXPECT_NE(missing.find("layer 'layer', config 'r_max': required number is missing"), std::string::npos)
      << missing;
  EXPECT_EQ(missing.rfind("<test>:1:9: ", 0), 0u) << missing;  // position of the config mapping

  const std::string negative = build_error("RadialBasisEdgeEncoding", "{r_max: -1.0}");
  EXPECT_EQ(negative.rfind("<test>:1:17: layer 'layer', config 'r_max'", 0), 0u) << negative;

  const std::string basis = build_error("RadialBasisEdgeEncoding", "{r_max: 4.0, basis: GaussianBasis}");
  EXPECT_NE(basis.find("config 'basis'"), std::string::npos) << basis;
  EXPECT_NE(basis.find("BesselBasis"), std::string::npos) << basis;

  const std::string kwargs = build_error("RadialBasisEdgeEncoding", "{r_max: 4.0, basis_kwargs: {width: 2}}");
  EXPECT_NE(kwargs.find("width"), std::string::npos) << kwargs;
  EXPECT_EQ(build_error("RadialBasisEdgeEncoding", "{r_max: 4.0, cutoff_kwargs: {p: 3}}"), "");

  const std::string degree = build_error("PolynomialCutoff", "{r_max: 4.0, polynomial_degree: 1}");
  EXPECT_NE(degree.find("config 'polynomial_degree'"), std::string::npos) << degree;
  const std::string unknown = build_error("BesselBasis", "{r_max: 4.0, num_basis: 4}");
  EXPECT_NE(unknown.find("num_basis"), std::string::npos) << unknown;
}

}  // namespace
}  // namespace klay::testing
