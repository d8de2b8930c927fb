// OneHotAtomEncoding, BinaryAtomicNumberEncoding, ElectronicConfigurationEncoding
// (docs/layers.md#atom-encodings) on hand-checked inputs; numbers against Python: layer_*Encoding_*
// conformance cases.
#include <gtest/gtest.h>

#include "conv_layer_testing.hpp"

namespace klay::testing {
namespace {

at::Tensor labels(std::vector<int64_t> values) { return at::tensor(values, at::kLong); }

TEST(OneHotAtomEncoding, SpeciesIndicesAndStateDict) {
  auto layer = build_layer("OneHotAtomEncoding", "{num_elems: 3}");
  const at::Tensor out = call_tensor(*layer, {labels({2, 0, 1})});
  EXPECT_EQ(out.scalar_type(), at::kDouble);
  EXPECT_TRUE(at::equal(out, at::tensor({0., 0., 1., 1., 0., 0., 0., 1., 0.}, f64()).view({3, 3})));
  const auto buffers = layer->named_buffers();
  ASSERT_EQ(buffers.size(), 1u);
  EXPECT_EQ(buffers["z_to_idx_shift"].dim(), 0);
  EXPECT_EQ(buffers["z_to_idx_shift"].scalar_type(), at::kLong);
  EXPECT_EQ(buffers["z_to_idx_shift"].item<int64_t>(), 0);
  EXPECT_TRUE(layer->named_parameters().is_empty());
}

TEST(OneHotAtomEncoding, AtomicNumbersAreShiftedByOne) {
  auto layer = build_layer("OneHotAtomEncoding", "{num_elems: 2, input_is_atomic_number: true}");
  EXPECT_EQ(layer->named_buffers()["z_to_idx_shift"].item<int64_t>(), 1);
  const at::Tensor out = call_tensor(*layer, {labels({1, 2})});
  EXPECT_TRUE(at::equal(out, at::eye(2, f64())));
}

TEST(OneHotAtomEncoding, OutOfRangeLabelNamesLayerAndValue) {
  auto layer = build_layer("OneHotAtomEncoding", "{num_elems: 2}");
  try {
    call_tensor(*layer, {labels({0, 2})});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("OneHotAtomEncoding 'layer'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("input value 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(call_tensor(*layer, {at::tensor({0.0}, f64())}), Error);  // labels must be int64
  try {  // the first offending label, below the range
    call_tensor(*layer, {labels({1, -3, 5})});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input value -3 is not a valid element index"), std::string::npos)
        << e.what();
  }
}

TEST(OneHotAtomEncoding, FollowsModelDtype) {
  auto layer = build_layer("OneHotAtomEncoding", "{num_elems: 2}");
  layer->set_floating_dtype(at::kFloat);
  EXPECT_EQ(call_tensor(*layer, {labels({1})}).scalar_type(), at::kFloat);
}

TEST(OneHotAtomEncoding, ConfigErrors) {
  const std::string missing = build_error("OneHotAtomEncoding", "{input_is_atomic_number: true}");
  EXPECT_NE(missing.find("layer 'layer', config 'num_elems'"), std::string::npos) << missing;
  const std::string misspelt = build_error("OneHotAtomEncoding", "{num_elems: 2, input_is_atomic_numbers: true}");
  EXPECT_NE(misspelt.find("input_is_atomic_numbers"), std::string::npos) << misspelt;
}

TEST(BinaryAtomicNumberEncoding, MostSignificantBitFirst) {
  auto layer = build_layer("BinaryAtomicNumberEncoding", "{}");
  // 6 = 0b00000110, 118 = 0b01110110, 1 = 0b00000001, 255 = 0b11111111.
  const at::Tensor out = call_tensor(*layer, {labels({6, 118, 1, 255})});
  const at::Tensor expected = at::tensor({0., 0., 0., 0., 0., 1., 1., 0.,  //
                                          0., 1., 1., 1., 0., 1., 1., 0.,  //
                                          0., 0., 0., 0., 0., 0., 0., 1.,  //
                                          1., 1., 1., 1., 1., 1., 1., 1.},
                                         f64())
                                  .view({4, 8});
  EXPECT_EQ(out.scalar_type(), at::kDouble);
  EXPECT_TRUE(at::equal(out, expected));
}

TEST(BinaryAtomicNumberEncoding, WrapsAbove255LikeKLay) {
  auto layer = build_layer("BinaryAtomicNumberEncoding", "{}");
  EXPECT_TRUE(at::equal(call_tensor(*layer, {labels({256 + 6})}), call_tensor(*layer, {labels({6})})));
}

TEST(ElectronicConfigurationEncoding, TableComesFromTheWeights) {
  auto layer = build_layer("ElectronicConfigurationEncoding", "{}");
  at::Tensor table = layer->named_buffers()["e_config"];
  EXPECT_EQ(table.sizes(), (std::vector<int64_t>{118, 24}));
  EXPECT_EQ(table.scalar_type(), at::kFloat);
  EXPECT_TRUE(layer->named_parameters().is_empty());

  try {
    call_tensor(*layer, {labels({1})});
    FAIL() << "expected an error before the table is loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("e_config"), std::string::npos) << e.what();
  }

  // What a weights loader does: copy into the registered buffer. Row Z−1 holds Z's data.
  at::NoGradGuard no_grad;
  table.copy_(at::arange(118 * 24, at::kFloat).view({118, 24}));
  const at::Tensor out = call_tensor(*layer, {labels({1, 118, 6})});
  EXPECT_EQ(out.scalar_type(), at::kDouble);
  EXPECT_TRUE(at::equal(out.select(0, 0), at::arange(0, 24, f64())));
  EXPECT_TRUE(at::equal(out.select(0, 1), at::arange(117 * 24, 118 * 24, f64())));
  EXPECT_TRUE(at::equal(out.select(0, 2), at::arange(5 * 24, 6 * 24, f64())));
  EXPECT_THROW(call_tensor(*layer, {labels({0})}), Error);
  EXPECT_THROW(call_tensor(*layer, {labels({119})}), Error);
}

}  // namespace
}  // namespace klay::testing
