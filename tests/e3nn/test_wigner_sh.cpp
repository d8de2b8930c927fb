// wigner_3j against the facts of docs/layers.md#wigner-3j and spherical harmonics against the check
// vector and conventions of docs/layers.md#spherical-harmonics; equivariance through Wigner-D
// matrices fitted from the harmonics.
#include <gtest/gtest.h>

#include <cmath>

#include <torch/autograd.h>

#include "e3nn/spherical_harmonics.hpp"
#include "e3nn/wigner_3j.hpp"
#include "e3nn_test_util.hpp"
#include "base/error.hpp"

namespace klay::e3nn {
namespace {

using test::relative_error;

TEST(Wigner3j, TrivialCouplingsArePositiveIdentities) {
  for (int l = 0; l <= 4; ++l) {
    const at::Tensor expected = at::eye(2 * l + 1, at::kDouble) / std::sqrt(2.0 * l + 1);
    EXPECT_LT((wigner_3j(0, l, l)[0] - expected).abs().max().item<double>(), 1e-15);
    EXPECT_LT((wigner_3j(l, 0, l).select(1, 0) - expected).abs().max().item<double>(), 1e-15);
    EXPECT_LT((wigner_3j(l, l, 0).select(2, 0) - expected).abs().max().item<double>(), 1e-15);
  }
}

TEST(Wigner3j, OneOneOneIsLeviCivita) {
  const at::Tensor w = wigner_3j(1, 1, 1);
  const double s = 1 / std::sqrt(6.0);
  at::Tensor epsilon = at::zeros({3, 3, 3}, at::kDouble);
  const int even[3][3] = {{0, 1, 2}, {1, 2, 0}, {2, 0, 1}};
  for (const auto& p : even) {
    epsilon[p[0]][p[1]][p[2]] = s;
    epsilon[p[1]][p[0]][p[2]] = -s;
  }
  EXPECT_LT((w - epsilon).abs().max().item<double>(), 1e-15);
  EXPECT_NEAR(w[0][1][2].item<double>(), s, 1e-16);
}

TEST(Wigner3j, OneOneTwoNonzeros) {
  const double a = 0.182574185835, b = 0.316227766017, c = 0.36514837167;
  at::Tensor expected = at::zeros({3, 3, 5}, at::kDouble);
  expected[0][0][2] = -a;
  expected[0][0][4] = -b;
  for (auto [i, j, k] : {std::tuple{0, 1, 1}, {0, 2, 0}, {1, 0, 1}, {1, 2, 3}, {2, 0, 0}, {2, 1, 3}})
    expected[i][j][k] = b;
  expected[1][1][2] = c;
  expected[2][2][2] = -a;
  expected[2][2][4] = b;
  EXPECT_LT((wigner_3j(1, 1, 2) - expected).abs().max().item<double>(), 1e-12);  // spec prints 12 digits
}

TEST(Wigner3j, NormalisedAndPermutationSymmetric) {
  for (int l1 = 0; l1 <= 5; ++l1)
    for (int l2 = 0; l2 <= 5; ++l2)
      for (int l3 = std::abs(l1 - l2); l3 <= std::min(l1 + l2, 6); ++l3) {
        const at::Tensor w = wigner_3j(l1, l2, l3);
        EXPECT_NEAR(w.norm().item<double>(), 1.0, 1e-14);
        const double sign = (l1 + l2 + l3) % 2 == 0 ? 1.0 : -1.0;
        EXPECT_LT((wigner_3j(l2, l1, l3).permute({1, 0, 2}) - sign * w).abs().max().item<double>(), 1e-14)
            << l1 << " " << l2 << " " << l3;
      }
  EXPECT_THROW(wigner_3j(1, 1, 3), Error);
}

TEST(Wigner3j, InvariantUnderRotations) {
  at::manual_seed(1);
  const at::Tensor r = test::random_rotation();
  for (auto [l1, l2, l3] : {std::tuple{1, 1, 2}, {1, 2, 2}, {2, 2, 3}, {3, 4, 5}, {2, 3, 1}, {2, 2, 2}, {2, 2, 1}, {1, 1, 1},
                            {2, 1, 1}, {3, 3, 2}, {3, 3, 3}, {4, 4, 4}}) {
    const at::Tensor w = wigner_3j(l1, l2, l3);
    const at::Tensor rotated = at::einsum(
        "ai,bj,ck,ijk->abc", {test::wigner_d(l1, r), test::wigner_d(l2, r), test::wigner_d(l3, r), w});
    EXPECT_LT((rotated - w).abs().max().item<double>(), 1e-12) << l1 << l2 << l3;
  }
}

TEST(SphericalHarmonics, SpecCheckVector) {
  const at::Tensor v = at::tensor({0.3, -0.5, 0.8}, at::kDouble);
  const at::Tensor expected = at::tensor(
      {1.0, 0.524890659168, -0.87481776528, 1.399708424448, 0.948485717439, -0.592803573399, -0.262395732054,
       -1.580809529064, 1.086806551232, 1.18364715777, -1.267467353894, 0.135272824815, 1.152223211306,
       0.360727532839, -1.452306343004, 0.63817770255},
      at::kDouble);
  const at::Tensor y = spherical_harmonics(3, v, /*normalize=*/true);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{16}));
  EXPECT_LT((y - expected).abs().max().item<double>(), 1e-11);
}

TEST(SphericalHarmonics, NormalisationsAndSelection) {
  at::manual_seed(2);
  const at::Tensor v = at::randn({7, 3}, at::kDouble);
  const at::Tensor component = spherical_harmonics(5, v, true);
  std::vector<at::Tensor> norm_blocks;
  for (int l = 0; l <= 5; ++l) norm_blocks.push_back(component.narrow(1, l * l, 2 * l + 1) / std::sqrt(2.0 * l + 1));
  EXPECT_LT(relative_error(spherical_harmonics(5, v, true, ShNormalization::norm), at::cat(norm_blocks, 1)), 1e-15);
  EXPECT_LT(relative_error(spherical_harmonics(5, v, true, ShNormalization::integral),
                           component / std::sqrt(4 * M_PI)),
            1e-15);
  const at::Tensor selected = spherical_harmonics(std::vector<int>{3, 1}, v, true);
  EXPECT_TRUE(at::equal(selected, at::cat({component.narrow(1, 9, 7), component.narrow(1, 1, 3)}, 1)));
  // Without normalize the polynomials scale with |v|^l.
  const at::Tensor raw = spherical_harmonics(std::vector<int>{2}, 2.0 * v / v.norm(2, {1}, true), false);
  EXPECT_LT(relative_error(raw, 4.0 * component.narrow(1, 4, 5)), 1e-14);
}

TEST(SphericalHarmonics, ZeroVectorGivesOnlyTheScalar) {
  const at::Tensor y = spherical_harmonics(4, at::zeros({1, 3}, at::kDouble), true);
  EXPECT_EQ(y[0][0].item<double>(), 1.0);
  EXPECT_EQ(y.narrow(1, 1, 24).abs().max().item<double>(), 0.0);
}

// Component normalisation: |Y^l(v)|² = 2l+1 on the unit sphere, and at the pole (0,1,0) only the
// centre component m = 0 is nonzero (and positive) — the conventions that fix the recursion for l > 3.
// Edge lengths as torch.linalg.norm gives them (to an ulp), with its first and second derivatives;
// at a zero vector both are zero (torch's second derivative is NaN there).
TEST(SphericalHarmonics, VectorLengthsAreTorchNormsWithTheirDerivatives) {
  at::manual_seed(12);
  at::Tensor v = at::randn({200, 3}, at::kDouble) * 3.0;
  v[7].zero_();
  const at::Tensor expected = at::linalg_norm(v, c10::nullopt, {-1});
  const at::Tensor got = vector_lengths(v);
  EXPECT_LE((got - expected).abs().max().item<double>(), 2.3e-16 * expected.max().item<double>());
  EXPECT_EQ(got[7].item<double>(), 0.0);

  auto derivatives = [](const at::Tensor& lengths, const at::Tensor& input) {
    const at::Tensor weights = at::linspace(0.5, 1.5, lengths.size(0), lengths.options());
    const at::Tensor first = torch::autograd::grad({(lengths * weights).sum()}, {input}, {}, true, true)[0];
    const at::Tensor probe = at::cos(at::arange(input.numel(), input.options())).view_as(input);
    const at::Tensor second = torch::autograd::grad({(first * probe).sum()}, {input})[0];
    return std::make_pair(first, second);
  };
  const at::Tensor a = v.clone().requires_grad_(true), b = v.clone().requires_grad_(true);
  const auto [first, second] = derivatives(vector_lengths(a), a);
  const auto [first_ref, second_ref] = derivatives(at::linalg_norm(b, c10::nullopt, {-1}), b);
  EXPECT_TRUE(at::isfinite(first).all().item<bool>() && at::isfinite(second).all().item<bool>());
  EXPECT_LE((first - first_ref).abs().max().item<double>(), 1e-15);
  const at::Tensor others = at::cat({at::arange(0, 7), at::arange(8, 200)});
  const at::Tensor second_others = second.index_select(0, others), second_ref_others = second_ref.index_select(0, others);
  EXPECT_LE((second_others - second_ref_others).abs().max().item<double>(),
            1e-14 * second_ref_others.abs().max().item<double>());
  EXPECT_EQ(second[7].abs().sum().item<double>(), 0.0);
  EXPECT_EQ(first[7].abs().sum().item<double>(), 0.0);
}

TEST(SphericalHarmonics, ComponentNormAndPole) {
  at::manual_seed(3);
  const int lmax = 10;
  const at::Tensor y = spherical_harmonics(lmax, at::randn({20, 3}, at::kDouble), true);
  const at::Tensor pole = spherical_harmonics(lmax, at::tensor({0.0, 1.0, 0.0}, at::kDouble), true);
  for (int l = 0; l <= lmax; ++l) {
    const at::Tensor block = y.narrow(1, l * l, 2 * l + 1);
    EXPECT_LT((block.pow(2).sum(1) - (2 * l + 1)).abs().max().item<double>(), 1e-11 * (2 * l + 1)) << l;
    at::Tensor expected = at::zeros({2 * l + 1}, at::kDouble);
    expected[l] = std::sqrt(2.0 * l + 1);
    EXPECT_LT((pole.narrow(0, l * l, 2 * l + 1) - expected).abs().max().item<double>(), 1e-13) << l;
  }
}

// Y(Rv) = D(R) Y(v) with D fitted on other directions; D is orthogonal and D_1 = R (l = 1 is (x, y, z)).
TEST(SphericalHarmonics, EquivariantUpToL8) {
  at::manual_seed(4);
  const at::Tensor r = test::random_rotation();
  const at::Tensor v = at::randn({30, 3}, at::kDouble);
  for (int l = 0; l <= 8; ++l) {
    const at::Tensor d = test::wigner_d(l, r);
    EXPECT_LT((at::matmul(d, d.t()) - at::eye(2 * l + 1, at::kDouble)).abs().max().item<double>(), 1e-12) << l;
    const std::vector<int> ls{l};
    const at::Tensor lhs = spherical_harmonics(ls, at::matmul(v, r.t()), true);
    const at::Tensor rhs = at::matmul(spherical_harmonics(ls, v, true), d.t());
    EXPECT_LT(relative_error(lhs, rhs), 1e-12) << l;
    // Parity: Y^l(-v) = (-1)^l Y^l(v).
    EXPECT_LT(relative_error(spherical_harmonics(ls, -v, true), spherical_harmonics(ls, v, true) * std::pow(-1.0, l)),
              1e-14);
  }
  EXPECT_LT((test::wigner_d(1, r) - r).abs().max().item<double>(), 1e-13);
}

TEST(SphericalHarmonics, GradientMatchesFiniteDifferences) {
  at::manual_seed(5);
  const at::Tensor v = at::randn({4, 3}, at::kDouble).requires_grad_(true);
  const at::Tensor weights = at::randn({4, 49}, at::kDouble);
  auto energy = [&](const at::Tensor& x) { return (spherical_harmonics(6, x, true) * weights).sum(); };
  const at::Tensor grad = torch::autograd::grad({energy(v)}, {v})[0];
  const double h = 1e-5;
  at::Tensor fd = at::zeros_like(grad);
  at::NoGradGuard no_grad;
  for (int i = 0; i < 4; ++i)
    for (int k = 0; k < 3; ++k) {
      at::Tensor plus = v.detach().clone(), minus = v.detach().clone();
      plus[i][k] += h;
      minus[i][k] -= h;
      fd[i][k] = (energy(plus) - energy(minus)) / (2 * h);
    }
  EXPECT_LT(relative_error(grad, fd), 1e-8);
}

}  // namespace
}  // namespace klay::e3nn
