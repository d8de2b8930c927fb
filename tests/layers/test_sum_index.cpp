// AtomwiseSumIndex and KIMAPISumIndex (docs/layers.md#sum-index, #quirk-sum-index). Numbers
// against Python: layer_AtomwiseSumIndex_*, layer_KIMAPISumIndex_0.
#include <gtest/gtest.h>

#include "conv_layer_testing.hpp"

namespace klay::testing {
namespace {

at::Tensor two_segment_index() { return at::tensor({0, 2, 0, 2}, at::kLong); }

TEST(AtomwiseSumIndex, SegmentSumOfPerAtomEnergies) {
  auto layer = build_layer("AtomwiseSumIndex", "{}");
  const at::Tensor energies = at::tensor({1.0, 2.0, 4.0, 8.0}, f64()).view({4, 1});
  const at::Tensor h = call_tensor(*layer, {energies, two_segment_index()});
  EXPECT_TRUE(at::equal(h, at::tensor({5.0, 0.0, 10.0}, f64()).view({3, 1})));
  EXPECT_TRUE(layer->named_parameters().is_empty());
  EXPECT_TRUE(layer->named_buffers().is_empty());
}

TEST(AtomwiseSumIndex, OneDimensionalSource) {
  auto layer = build_layer("AtomwiseSumIndex", "{}");
  const at::Tensor h = call_tensor(*layer, {at::tensor({1.0, 2.0, 4.0, 8.0}, f64()), two_segment_index()});
  EXPECT_TRUE(at::equal(h, at::tensor({5.0, 0.0, 10.0}, f64())));
}

TEST(AtomwiseSumIndex, OnlyColumnZeroIsSummedLikeKLay) {
  auto layer = build_layer("AtomwiseSumIndex", "{}");
  const at::Tensor src = at::tensor({1.0, 10.0, 2.0, 20.0, 4.0, 40.0, 8.0, 80.0}, f64()).view({4, 2});
  const at::Tensor h = call_tensor(*layer, {src, two_segment_index()});
  EXPECT_TRUE(at::equal(h, at::tensor({5.0, 0.0, 0.0, 0.0, 10.0, 0.0}, f64()).view({3, 2})));
}

TEST(KIMAPISumIndex, ReturnsRowZero) {
  auto layer = build_layer("KIMAPISumIndex", "{}");
  const at::Tensor energies = at::tensor({1.0, 2.0, 4.0, 8.0}, f64()).view({4, 1});
  const at::Tensor h = call_tensor(*layer, {energies, at::tensor({0, 1, 0, 0}, at::kLong)});
  EXPECT_TRUE(at::equal(h, at::tensor({13.0}, f64())));
}

TEST(KIMAPISumIndex, NoAtomsGiveZeroEnergy) {
  auto layer = build_layer("KIMAPISumIndex", "{}");
  const at::Tensor h = call_tensor(*layer, {at::zeros({0, 1}, f64()), at::zeros({0}, at::kLong)});
  EXPECT_TRUE(at::equal(h, at::zeros({1}, f64())));
}

TEST(AtomwiseSumIndex, BadIndexNamesLayerAndPort) {
  auto layer = build_layer("AtomwiseSumIndex", "{}");
  const at::Tensor src = at::ones({4, 1}, f64());
  for (const at::Tensor& index : {at::zeros({4}, at::kInt), at::zeros({3}, at::kLong), at::full({4}, -1, at::kLong)}) {
    try {
      call_tensor(*layer, {src, index});
      FAIL() << "expected an error for index " << index;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("AtomwiseSumIndex 'layer': input index"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace klay::testing
