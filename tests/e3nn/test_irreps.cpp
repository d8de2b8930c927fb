// Irreps algebra (docs/layers.md#irreps) and the worked examples of ConvNetLayer and MACE_layer
// (docs/layers.md#convnet-layer, #mace-layer).
#include <gtest/gtest.h>

#include "e3nn/irreps.hpp"
#include "base/error.hpp"

namespace klay::e3nn {
namespace {

TEST(Irreps, ParseAndPrint) {
  const Irreps irreps("32x0e + 16x1o+ 1e + 0x2e +3x3y");
  ASSERT_EQ(irreps.size(), 5u);
  EXPECT_EQ(irreps[0], (MulIrrep{32, Irrep{0, 1}}));
  EXPECT_EQ(irreps[1], (MulIrrep{16, Irrep{1, -1}}));
  EXPECT_EQ(irreps[2], (MulIrrep{1, Irrep{1, 1}}));
  EXPECT_EQ(irreps[3], (MulIrrep{0, Irrep{2, 1}}));
  EXPECT_EQ(irreps[4], (MulIrrep{3, Irrep{3, -1}}));  // y = (-1)^l
  EXPECT_EQ(irreps.to_string(), "32x0e+16x1o+1x1e+0x2e+3x3o");
  EXPECT_EQ(Irreps(irreps.to_string()), irreps);
  EXPECT_TRUE(Irreps("").empty());
  EXPECT_EQ(Irrep::parse("2y"), (Irrep{2, 1}));
}

TEST(Irreps, ParseErrors) {
  EXPECT_THROW(Irreps("3x"), Error);
  EXPECT_THROW(Irreps("3x1q"), Error);
  EXPECT_THROW(Irreps("1o+"), Error);
  EXPECT_THROW(Irreps("ax0e"), Error);
  EXPECT_THROW(Irreps("-1x0e"), Error);
}

TEST(Irreps, Counting) {
  const Irreps irreps("2x0e + 3x1o + 0x3e + 4x0e");
  EXPECT_EQ(irreps.dim(), 2 + 9 + 0 + 4);
  EXPECT_EQ(irreps.num_irreps(), 9);
  EXPECT_EQ(irreps.count(Irrep{0, 1}), 6);
  EXPECT_EQ(irreps.count(Irrep{1, 1}), 0);
  EXPECT_TRUE(irreps.contains(Irrep{3, 1}));  // an entry with mul 0 still "contains"
  EXPECT_FALSE(irreps.contains(Irrep{1, 1}));
  EXPECT_EQ(irreps.lmax(), 1);  // mul-0 entries do not count
  EXPECT_EQ(irreps.offsets(), (std::vector<int64_t>{0, 2, 11, 11, 15}));
  EXPECT_THROW(Irreps("0x1o").lmax(), Error);
}

TEST(Irreps, SimplifyMergesOnlyAdjacentAndDropsEmpty) {
  EXPECT_EQ(Irreps("2x0e+3x0e").simplify(), Irreps("5x0e"));
  EXPECT_EQ(Irreps("2x0e+1x1o+3x0e").simplify(), Irreps("2x0e+1x1o+3x0e"));
  EXPECT_EQ(Irreps("2x0e+0x1o+3x0e").simplify(), Irreps("5x0e"));
  EXPECT_EQ(Irreps("0x0e+1x1o").simplify(), Irreps("1x1o"));
  EXPECT_NE(Irreps("2x0e+3x0e"), Irreps("5x0e"));  // the list structure is kept until simplify()
}

TEST(Irreps, SortIsStableWithOddParityFirst) {
  const auto sorted = Irreps("1x1e + 2x0e + 3x1o + 4x0o + 5x0e").sort();
  EXPECT_EQ(sorted.irreps, Irreps("4x0o+2x0e+5x0e+3x1o+1x1e"));
  EXPECT_EQ(sorted.perm, (std::vector<int>{4, 1, 3, 0, 2}));  // perm[old] = new
  EXPECT_EQ(sorted.inverse, (std::vector<int>{3, 1, 4, 2, 0}));
}

// docs/layers.md#convnet-layer: second ConvNetLayer of new_model.yaml, gate input irreps.
TEST(Irreps, ConvNetLayerGateInputExample) {
  const Irreps scalars("32x0e"), gates("32x0e+32x0e"), gated("32x1e+32x1o");
  const auto sorted = (scalars.simplify() + gates.simplify() + gated.simplify()).sort();
  EXPECT_EQ(sorted.irreps.simplify(), Irreps("96x0e + 32x1o + 32x1e"));
  EXPECT_EQ(sorted.perm, (std::vector<int>{0, 1, 3, 2}));
}

TEST(Irreps, ProductAndSphericalHarmonics) {
  const auto product = irrep_product(Irrep{2, -1}, Irrep{1, -1});
  EXPECT_EQ(product, (std::vector<Irrep>{{1, 1}, {2, 1}, {3, 1}}));
  EXPECT_EQ(irrep_product(Irrep{0, 1}, Irrep{3, -1}), (std::vector<Irrep>{{3, -1}}));
  EXPECT_EQ(Irreps::spherical_harmonics(3), Irreps("1x0e+1x1o+1x2e+1x3o"));
}

// docs/layers.md#mace-layer: MACE target = simplify(sort(sh * F)).
TEST(Irreps, RepeatConcatenatesLists) {
  const Irreps sh = Irreps::spherical_harmonics(2);
  EXPECT_EQ(sh.repeat(2), Irreps("0e+1o+2e+0e+1o+2e"));
  EXPECT_EQ(sh.repeat(32).sort().irreps.simplify(), Irreps("32x0e+32x1o+32x2e"));
  EXPECT_EQ(Irreps("1x0e") + Irreps("2x1o"), Irreps("1x0e+2x1o"));
}

}  // namespace
}  // namespace klay::e3nn
