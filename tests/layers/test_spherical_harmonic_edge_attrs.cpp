// SphericalHarmonicEdgeAttrs (docs/layers.md#spherical-harmonic-edge-attrs): edge vectors with
// KLay's "+ shift" convention, the check vector of docs/layers.md#spherical-harmonics in all three
// normalisations, the addition theorem, rotation equivariance, autograd vs central differences,
// config errors. Numbers against Python: layer_SphericalHarmonicEdgeAttrs_*.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "conv_layer_testing.hpp"

namespace klay::testing {
namespace {

// docs/layers.md#spherical-harmonics: Y^0…Y^3 (component normalisation) of (0.3, −0.5, 0.8),
// normalised inside.
const std::vector<double> kCheckValues = {
    1,           0.524890659168, -0.87481776528, 1.399708424448, 0.948485717439, -0.592803573399,
    -0.262395732054, -1.580809529064, 1.086806551232, 1.18364715777, -1.267467353894, 0.135272824815,
    1.152223211306, 0.360727532839, -1.452306343004, 0.63817770255};

struct EdgeAttrs {
  at::Tensor vec, lengths, sh;
};

EdgeAttrs call_edge_attrs(Layer& layer, const at::Tensor& pos, const at::Tensor& edge_index, const at::Tensor& shift) {
  const auto outputs = layer.call(CallArgs{{pos, edge_index, shift}, {}}).toTuple()->elements();
  EXPECT_EQ(outputs.size(), 3u);
  return {outputs[0].toTensor(), outputs[1].toTensor(), outputs[2].toTensor()};
}

// The check vector as the edge from atom 1 to atom 0: pos[0] − pos[1] + shift = (0.3, −0.5, 0.8).
EdgeAttrs check_edge(const std::string& config) {
  auto layer = build_layer("SphericalHarmonicEdgeAttrs", config);
  const at::Tensor pos = at::tensor({1.0, 0.5, -0.2, 0.9, 1.5, -0.5}, f64()).view({2, 3});
  const at::Tensor edge_index = at::tensor({1, 0}, at::kLong).view({2, 1});
  const at::Tensor shift = at::tensor({0.2, 0.5, 0.5}, f64()).view({1, 3});
  return call_edge_attrs(*layer, pos, edge_index, shift);
}

TEST(SphericalHarmonicEdgeAttrs, CheckVectorComponent) {
  const EdgeAttrs out = check_edge("{lmax: 3}");
  ASSERT_EQ(out.sh.sizes(), (std::vector<int64_t>{1, 16}));
  EXPECT_NEAR(out.vec[0][0].item<double>(), 0.3, 1e-15);
  EXPECT_NEAR(out.vec[0][1].item<double>(), -0.5, 1e-15);
  EXPECT_NEAR(out.vec[0][2].item<double>(), 0.8, 1e-15);
  EXPECT_NEAR(out.lengths[0].item<double>(), std::sqrt(0.98), 1e-15);
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(out.sh[0][i].item<double>(), kCheckValues[i], 1e-11) << "component " << i;
}

TEST(SphericalHarmonicEdgeAttrs, CheckVectorNormAndIntegral) {
  const EdgeAttrs norm = check_edge("{lmax: 3, normalization: norm}");
  const EdgeAttrs integral = check_edge("{lmax: 2, normalization: integral}");
  ASSERT_EQ(integral.sh.sizes(), (std::vector<int64_t>{1, 9}));
  for (int l = 0, i = 0; l <= 3; ++l)
    for (int m = 0; m < 2 * l + 1; ++m, ++i) {
      EXPECT_NEAR(norm.sh[0][i].item<double>(), kCheckValues[i] / std::sqrt(2.0 * l + 1), 1e-11) << i;
      if (l <= 2) {
        EXPECT_NEAR(integral.sh[0][i].item<double>(), kCheckValues[i] / std::sqrt(4 * M_PI), 1e-11) << i;
      }
    }
}

TEST(SphericalHarmonicEdgeAttrs, DefaultsAndNoState) {
  auto layer = build_layer("SphericalHarmonicEdgeAttrs", "{}");
  EXPECT_TRUE(layer->named_parameters().is_empty());
  EXPECT_TRUE(layer->named_buffers().is_empty());
  const at::Tensor pos = at::randn({3, 3}, f64());
  const at::Tensor edge_index = at::tensor({0, 1, 2, 1, 2, 0}, at::kLong).view({2, 3});
  const EdgeAttrs out = call_edge_attrs(*layer, pos, edge_index, at::zeros({3, 3}, f64()));
  EXPECT_EQ(out.sh.sizes(), (std::vector<int64_t>{3, 4}));  // lmax 1
  EXPECT_TRUE(at::allclose(out.vec[2], pos[0] - pos[2], 0, 1e-15));
  EXPECT_TRUE(at::allclose(out.lengths, out.vec.norm(2, {-1}), 0, 1e-15));
}

// Legendre P_l(t) by Bonnet's recursion.
double legendre(int l, double t) {
  double previous = 1.0, current = t;
  if (l == 0) return previous;
  for (int k = 1; k < l; ++k) {
    const double next = ((2 * k + 1) * t * current - k * previous) / (k + 1);
    previous = current;
    current = next;
  }
  return current;
}

TEST(SphericalHarmonicEdgeAttrs, AdditionTheorem) {
  // Component normalisation: Σ_m Y^l_m(a) Y^l_m(b) = (2l+1) P_l(â·b̂), for every l.
  const int lmax = 5;
  auto layer = build_layer("SphericalHarmonicEdgeAttrs", "{lmax: 5}");
  at::manual_seed(3);
  const at::Tensor pos = at::randn({6, 3}, f64());
  const at::Tensor edge_index = at::tensor({0, 0, 0, 0, 0, 1, 2, 3, 4, 5}, at::kLong).view({2, 5});
  const EdgeAttrs out = call_edge_attrs(*layer, pos, edge_index, at::zeros({1, 3}, f64()));
  const at::Tensor unit = out.vec / out.lengths.unsqueeze(-1);
  for (int64_t a = 0; a < 5; ++a)
    for (int64_t b = 0; b < 5; ++b) {
      const double cosine = at::dot(unit[a], unit[b]).item<double>();
      for (int l = 0, offset = 0; l <= lmax; offset += 2 * l + 1, ++l) {
        const double inner =
            at::dot(out.sh[a].narrow(0, offset, 2 * l + 1), out.sh[b].narrow(0, offset, 2 * l + 1)).item<double>();
        EXPECT_NEAR(inner, (2 * l + 1) * legendre(l, cosine), 1e-12) << "l=" << l << " a=" << a << " b=" << b;
      }
    }
}

TEST(SphericalHarmonicEdgeAttrs, RotationEquivariance) {
  // Rotating all positions rotates edge_vec by R, keeps the lengths, and maps each SH block by the
  // orthogonal D^l(R) (fitted on other vectors); the l = 1 block is the Cartesian vector itself.
  auto layer = build_layer("SphericalHarmonicEdgeAttrs", "{lmax: 3}");
  at::manual_seed(11);
  const at::Tensor pos = at::randn({5, 3}, f64()) * 2.0;
  const at::Tensor edge_index = at::tensor({0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1}, at::kLong).view({2, 6});
  const at::Tensor shift = at::randn({6, 3}, f64()) * 0.5;
  const at::Tensor rotation = random_rotation(5);
  const EdgeAttrs out = call_edge_attrs(*layer, pos, edge_index, shift);
  const EdgeAttrs rotated =
      call_edge_attrs(*layer, at::matmul(pos, rotation.t()), edge_index, at::matmul(shift, rotation.t()));
  EXPECT_LT(max_abs(rotated.vec - at::matmul(out.vec, rotation.t())), 1e-14);
  EXPECT_LT(max_abs(rotated.lengths - out.lengths), 1e-14);
  for (int l = 0, offset = 0; l <= 3; offset += 2 * l + 1, ++l) {
    const at::Tensor d = irrep_rotation(e3nn::Irrep{l, l % 2 ? -1 : 1}, rotation, false);
    EXPECT_LT(max_abs(at::matmul(d, d.t()) - at::eye(2 * l + 1, f64())), 1e-12) << "l=" << l;
    const at::Tensor block = out.sh.narrow(1, offset, 2 * l + 1);
    EXPECT_LT(max_abs(rotated.sh.narrow(1, offset, 2 * l + 1) - at::matmul(block, d.t())), 1e-12) << "l=" << l;
  }
  EXPECT_LT(max_abs(rotated.sh.narrow(1, 1, 3) - at::matmul(out.sh.narrow(1, 1, 3), rotation.t())), 1e-14);
}

TEST(SphericalHarmonicEdgeAttrs, AutogradMatchesCentralDifferences) {
  auto layer = build_layer("SphericalHarmonicEdgeAttrs", "{lmax: 3}");
  at::manual_seed(5);
  const at::Tensor pos0 = at::randn({4, 3}, f64());
  const at::Tensor edge_index = at::tensor({0, 1, 2, 3, 1, 2, 3, 0}, at::kLong).view({2, 4});
  const at::Tensor shift = at::randn({4, 3}, f64()) * 0.3;
  const at::Tensor sh_weights = at::randn({16}, f64());
  auto loss = [&](const at::Tensor& pos) {
    const EdgeAttrs out = call_edge_attrs(*layer, pos, edge_index, shift);
    return (out.sh * sh_weights).sum() + out.lengths.pow(2).sum() + out.vec.sum();
  };
  const at::Tensor pos = pos0.clone().requires_grad_(true);
  const at::Tensor analytic = torch::autograd::grad({loss(pos)}, {pos})[0];
  const double h = 1e-6;
  for (int64_t i = 0; i < pos0.numel(); ++i) {
    at::Tensor plus = pos0.clone(), minus = pos0.clone();
    plus.view({-1})[i] += h;
    minus.view({-1})[i] -= h;
    const double numeric = (loss(plus).item<double>() - loss(minus).item<double>()) / (2 * h);
    EXPECT_NEAR(analytic.view({-1})[i].item<double>(), numeric, 1e-7 * std::max(1.0, std::abs(numeric))) << i;
  }
}

TEST(SphericalHarmonicEdgeAttrs, ConfigErrors) {
  const std::string null_normalization = build_error("SphericalHarmonicEdgeAttrs", "{normalization: null}");
  EXPECT_NE(null_normalization.find("layer 'layer', config 'normalization'"), std::string::npos) << null_normalization;
  const std::string bad = build_error("SphericalHarmonicEdgeAttrs", "{normalization: unit}");
  EXPECT_NE(bad.find("component, norm or integral"), std::string::npos) << bad;
  const std::string negative = build_error("SphericalHarmonicEdgeAttrs", "{lmax: -1}");
  EXPECT_NE(negative.find("config 'lmax'"), std::string::npos) << negative;
}

TEST(SphericalHarmonicEdgeAttrs, BadInputsNameThePort) {
  auto layer = build_layer("SphericalHarmonicEdgeAttrs", "{}");
  const at::Tensor pos = at::zeros({2, 3}, f64());
  try {
    call_edge_attrs(*layer, pos, at::zeros({2, 1}, f64()), at::zeros({1, 3}, f64()));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("edge_index"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace klay::testing
