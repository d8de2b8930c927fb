// AtomwiseLinear and GatedAtomwiseLinear (docs/layers.md#atomwise-linear, #gated-atomwise-linear):
// state shapes, hand-computed values, equivariance, KLay's unsorted-gate quirk
// (docs/layers.md#quirk-gated-linear-sort) reproduced literally, config errors.
// Numbers against Python: layer_AtomwiseLinear_*, layer_GatedAtomwiseLinear_*.
#include <gtest/gtest.h>

#include "conv_layer_testing.hpp"

namespace klay::testing {
namespace {

void set_parameter(Layer& layer, const std::string& name, const at::Tensor& values) {
  at::NoGradGuard no_grad;
  at::Tensor p = layer.named_parameters()[name];
  ASSERT_EQ(p.numel(), values.numel()) << name;
  p.copy_(values.view(p.sizes()));
}

TEST(AtomwiseLinear, ReadoutShapesFromSpec) {
  // 32x0e+32x1o → 1x0e: weight [32], the 1o part is ignored.
  auto layer = build_layer("AtomwiseLinear",
                           "{irreps_in_block: [{l: 0, mul: 32}, {l: 1, mul: 32}], "
                           "irreps_out_block: [{l: 0, mul: 1}]}");
  auto params = layer->named_parameters();
  auto buffers = layer->named_buffers();
  EXPECT_EQ(params["linear.weight"].sizes(), (c10::IntArrayRef{32}));
  EXPECT_EQ(buffers["linear.bias"].sizes(), (c10::IntArrayRef{0}));
  EXPECT_EQ(buffers["linear.output_mask"].sizes(), (c10::IntArrayRef{1}));
}

TEST(AtomwiseLinear, HandComputed) {
  // [2x0e, 1x1o] → [1x0e, 1x1o]: out0 = (w0 h0 + w1 h1)/√2, out_1o = w2 v.
  auto layer = build_layer("AtomwiseLinear",
                           "{irreps_in_block: [{l: 0, mul: 2}, {l: 1, mul: 1}], "
                           "irreps_out_block: [{l: 0, mul: 1}, {l: 1, mul: 1}]}");
  set_parameter(*layer, "linear.weight", at::tensor({0.5, -2.0, 3.0}, f64()));
  const at::Tensor h = at::tensor({1.0, 2.0, 0.1, 0.2, 0.3}, f64()).view({1, 5});
  const at::Tensor expected = at::tensor({(0.5 - 4.0) / std::sqrt(2.0), 0.3, 0.6, 0.9}, f64()).view({1, 4});
  EXPECT_LE(max_abs(call_tensor(*layer, {h}) - expected), 1e-15);
}

TEST(AtomwiseLinear, EquivariantWithParityAndRepeatedIrreps) {
  const e3nn::Irreps in("3x0e+2x1o+1x1e+1x2e+1x1o"), out("1x0e+2x1o+1x2e+1x1e");
  auto layer =
      build_layer("AtomwiseLinear",
                  "{irreps_in_block: [{l: 0, mul: 3}, {l: 1, mul: 2}, {l: 1, mul: 1, p: e}, {l: 2, mul: 1}, "
                  "{l: 1, mul: 1}], irreps_out_block: [{l: 0, mul: 1}, {l: 1, mul: 2}, {l: 2, mul: 1}, "
                  "{l: 1, mul: 1, p: even}]}");
  randomize_parameters(*layer, 31);
  at::manual_seed(1);
  const at::Tensor h = at::randn({4, in.dim()}, f64());
  const at::Tensor rotation = random_rotation(2);
  for (bool inversion : {false, true}) {
    const at::Tensor moved = call_tensor(*layer, {rotate_features(h, in, rotation, inversion)});
    const at::Tensor expected = rotate_features(call_tensor(*layer, {h}), out, rotation, inversion);
    EXPECT_LE(max_abs(moved - expected), 1e-12 * max_abs(expected));
  }
}

// A readout to scalars reads only its input's scalars: what lets the model skip the non-scalar
// outputs of the convolution before it (Layer::columns_read).
TEST(AtomwiseLinear, ReadsOnlyTheInputsOfTheIrrepsItOutputs) {
  auto layer = build_layer("AtomwiseLinear",
                           "{irreps_in_block: [{l: 0, mul: 2}, {l: 1, mul: 2, p: o}, {l: 0, mul: 1}, {l: 2, mul: 1}], "
                           "irreps_out_block: [{l: 0, mul: 1}, {l: 2, mul: 1}]}");
  // columns: 2x0e 0-1, 2x1o 2-7, 1x0e 8, 1x2e 9-13; the output's 1x0e is column 0, its 1x2e 1-5
  EXPECT_EQ(layer->columns_read(0, std::nullopt), (std::vector<int64_t>{0, 1, 8, 9, 10, 11, 12, 13}));
  EXPECT_EQ(layer->columns_read(0, std::vector<int64_t>{0}), (std::vector<int64_t>{0, 1, 8}));
  EXPECT_EQ(layer->columns_read(0, std::vector<int64_t>{3}), (std::vector<int64_t>{9, 10, 11, 12, 13}));
  // and its result does not depend on the others
  randomize_parameters(*layer, 4);
  at::manual_seed(1);
  const at::Tensor h = at::randn({3, 14}, f64());
  at::Tensor changed = h.clone();
  changed.narrow(1, 2, 6).normal_();
  EXPECT_TRUE(at::equal(call_tensor(*layer, {h}), call_tensor(*layer, {changed})));
}

TEST(GatedAtomwiseLinear, EquivariantWhenGatedIrrepsAreSorted) {
  const e3nn::Irreps in("3x0e+2x1o+1x1e+1x2e"), out("2x0e+1x1o+1x1e+1x2e");
  auto layer = build_layer(
      "GatedAtomwiseLinear",
      "{irreps_in_block: [{l: 0, mul: 3}, {l: 1, mul: 2}, {l: 1, mul: 1, p: e}, {l: 2, mul: 1}], "
      "irreps_out_block: [{l: 0, mul: 2}, {l: 1, mul: 1}, {l: 1, mul: 1, p: e}, {l: 2, mul: 1}]}");
  randomize_parameters(*layer, 41);
  at::manual_seed(6);
  const at::Tensor h = at::randn({4, in.dim()}, f64());
  const at::Tensor rotation = random_rotation(3);
  for (bool inversion : {false, true}) {
    const at::Tensor moved = call_tensor(*layer, {rotate_features(h, in, rotation, inversion)});
    const at::Tensor expected = rotate_features(call_tensor(*layer, {h}), out, rotation, inversion);
    EXPECT_LE(max_abs(moved - expected), 1e-12 * max_abs(expected));
  }
}

// irreps_in 1x0e+1x2e+1x1o: lin1 writes 3x0e+1x2e+1x1o (unsorted) but the Gate reads the sorted
// 1x0e+2x0e+1x1o+1x2e. With identity-like lin1/lin2, the output shows the mis-slicing exactly:
// the "2e" is columns 6..10 of lin1's output (2e[3], 2e[4], 1o[0..2]), the "1o" columns 3..5 (2e[0..2]).
TEST(GatedAtomwiseLinear, UnsortedGatedIrrepsAreMisslicedAsInPython) {
  auto layer = build_layer("GatedAtomwiseLinear",
                           "{irreps_in_block: [{l: 0, mul: 1}, {l: 2, mul: 1}, {l: 1, mul: 1}], "
                           "irreps_out_block: [{l: 0, mul: 1}, {l: 2, mul: 1}, {l: 1, mul: 1}]}");
  set_parameter(*layer, "lin1.weight", at::ones({5}, f64()));
  set_parameter(*layer, "lin2.weight", at::ones({3}, f64()));
  const double h0 = 0.7;
  const std::vector<double> d{1.0, 2.0, 3.0, 4.0, 5.0}, v{-1.0, -2.0, -3.0};
  std::vector<double> input{h0};
  input.insert(input.end(), d.begin(), d.end());
  input.insert(input.end(), v.begin(), v.end());
  const at::Tensor out = call_tensor(*layer, {at::tensor(input, f64()).view({1, 9})});
  const double g = 1.6791767923989418 * h0 / (1.0 + std::exp(-h0));  // normalize2mom(silu)(h0)
  const std::vector<double> expected{g,        g * d[3], g * d[4], g * v[0], g * v[1],
                                     g * v[2], g * d[0], g * d[1], g * d[2]};
  EXPECT_LE(max_abs(out - at::tensor(expected, f64()).view({1, 9})), 1e-14);
}

TEST(GatedAtomwiseLinear, ConfigsPythonCannotBuildAreRejected) {
  EXPECT_NE(build_error("GatedAtomwiseLinear",
                        "{irreps_in_block: [{l: 0, mul: 2}], irreps_out_block: [{l: 0, mul: 1}]}")
                .find("l>0"),
            std::string::npos);
  EXPECT_NE(build_error("GatedAtomwiseLinear",
                        "{irreps_in_block: [{l: 0, mul: 2}, {l: 0, mul: 1}, {l: 1, mul: 1}], "
                        "irreps_out_block: [{l: 0, mul: 1}]}")
                .find("exactly one l=0"),
            std::string::npos);
  EXPECT_NE(build_error("GatedAtomwiseLinear",
                        "{irreps_in_block: [{l: 0, mul: 2, p: o}, {l: 1, mul: 1}], "
                        "irreps_out_block: [{l: 0, mul: 1}]}")
                .find("even"),
            std::string::npos);
  EXPECT_NE(build_error("AtomwiseLinear", "{irreps_in_block: 2x0e, irreps_out_block: [{l: 0, mul: 1}]}")
                .find("list"),
            std::string::npos);
}

TEST(AtomwiseLinear, WrongInputWidthIsAClearError) {
  auto layer = build_layer("AtomwiseLinear",
                           "{irreps_in_block: [{l: 0, mul: 2}], irreps_out_block: [{l: 0, mul: 1}]}");
  try {
    call_tensor(*layer, {at::zeros({3, 4}, f64())});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("2x0e"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace klay::testing
