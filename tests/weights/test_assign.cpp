// assign_state_dict: the strict rules for loading a file's tensors into a model's parameters and
// buffers (docs/design.md#weights: missing, unexpected, shape and dtype problems name the keys; alias
// duplicates must be equal).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>

#include "weights_testing.hpp"
#include "weights/assign.hpp"

namespace {
using klay_test::expect_error;

klay::StateDict make_sd(std::vector<std::pair<std::string, at::Tensor>> entries) {
  klay::StateDict sd;
  sd.entries = std::move(entries);
  return sd;
}

at::Tensor f64(std::vector<double> values) { return at::tensor(values, at::kDouble); }

TEST(AssignStateDict, CopiesIntoTargetsInPlaceAndConvertsFloatingTypes) {
  at::Tensor weight = at::zeros({2, 2}, at::kDouble).requires_grad_(true);  // a parameter
  at::Tensor scale = at::zeros({2}, at::kFloat);                            // a float32 buffer
  at::Tensor shift = at::zeros({}, at::kLong);
  const at::Tensor weight_before = weight;
  const klay::StateDict sd = make_sd({{"layer.weight", at::tensor({1.5f, -2.0f, 0.25f, 3.0f}).view({2, 2})},
                                      {"layer.scale", f64({0.5, 1e-3})},
                                      {"layer.shift", at::scalar_tensor(3, at::kLong)}});
  klay::assign_state_dict(sd, {{"layer.weight", weight}, {"layer.scale", scale}, {"layer.shift", shift}}, "w.pth");
  EXPECT_TRUE(weight.is_same(weight_before));
  EXPECT_EQ(weight.scalar_type(), at::kDouble);
  EXPECT_TRUE(weight.requires_grad());
  EXPECT_TRUE(at::equal(weight.detach(), f64({1.5, -2.0, 0.25, 3.0}).view({2, 2})));
  EXPECT_EQ(scale.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(scale, at::tensor({0.5f, 1e-3f})));
  EXPECT_EQ(shift.item<int64_t>(), 3);
}

TEST(AssignStateDict, IgnoresE3nnConstantsMasksAndEmptyTensorsNotInTheModel) {
  at::Tensor weight = at::zeros({2}, at::kDouble);
  const klay::StateDict sd = make_sd({{"lin.weight", f64({1, 2})},
                                      {"lin.output_mask", f64({1, 1, 0})},
                                      {"lin.bias", at::zeros({0}, at::kDouble)},
                                      {"tp._compiled_main_left_right._w3j_1_1_1", at::ones({3, 3, 3}, at::kDouble)}});
  klay::assign_state_dict(sd, {{"lin.weight", weight}}, "w.pth");
  EXPECT_TRUE(at::equal(weight, f64({1, 2})));
}

TEST(AssignStateDict, ListsEveryMissingAndUnexpectedKey) {
  at::Tensor a = at::zeros({1}, at::kDouble), b = at::zeros({1}, at::kDouble), c = at::zeros({1}, at::kDouble);
  const klay::StateDict sd = make_sd({{"b", f64({2})}, {"extra.one", f64({1})}, {"extra.two", f64({1})}});
  expect_error([&] { klay::assign_state_dict(sd, {{"a", a}, {"b", b}, {"c", c}}, "model.pth"); },
               {"model.pth: weights do not fit the model", "missing keys:\n    a\n    c", "unexpected keys:\n    extra.one\n    extra.two"});
  EXPECT_EQ(b.item<double>(), 0.0) << "nothing is written when the file does not fit";
}

TEST(AssignStateDict, ListsShapeMismatchesWithBothShapes) {
  at::Tensor w = at::zeros({16, 16}, at::kDouble), v = at::zeros({3}, at::kDouble);
  const klay::StateDict sd = make_sd({{"w", at::zeros({16, 8}, at::kDouble)}, {"v", at::zeros({}, at::kDouble)}});
  expect_error([&] { klay::assign_state_dict(sd, {{"w", w}, {"v", v}}, "model.pth"); },
               {"shape mismatch:", "w (model [16, 16], file [16, 8])", "v (model [3], file [])"});
}

TEST(AssignStateDict, RejectsIntegerFloatingKindMismatchesAndOverflow) {
  at::Tensor shift = at::zeros({}, at::kLong), weight = at::zeros({2}, at::kDouble), small = at::zeros({}, at::kInt);
  const klay::StateDict sd = make_sd({{"shift", at::scalar_tensor(1.0, at::kDouble)},
                                      {"weight", at::tensor({1, 2}, at::kLong)},
                                      {"small", at::scalar_tensor(int64_t(1) << 40, at::kLong)}});
  expect_error([&] { klay::assign_state_dict(sd, {{"shift", shift}, {"weight", weight}, {"small", small}}, "model.pth"); },
               {"dtype mismatch:", "shift (model integer Long, file floating Double)",
                "weight (model floating Double, file integer Long)", "small (file Long values do not fit model Int)"});
}

TEST(AssignStateDict, AliasSlotsShareTheirTargetAndNeedEqualDuplicates) {
  at::Tensor shared = at::zeros({2}, at::kDouble);
  const std::vector<klay::WeightSlot> slots = {{"dense.module.weight", shared}, {"second_pass.module.weight", shared}};
  klay::assign_state_dict(make_sd({{"dense.module.weight", f64({1, 2})}, {"second_pass.module.weight", f64({1, 2})}}), slots, "w.pth");
  EXPECT_TRUE(at::equal(shared, f64({1, 2})));

  expect_error(
      [&] {
        klay::assign_state_dict(make_sd({{"dense.module.weight", f64({3, 4})}, {"second_pass.module.weight", f64({3, 5})}}),
                                slots, "w.pth");
      },
      {"aliased layers whose duplicated weights differ:", "dense.module.weight and second_pass.module.weight"});
  EXPECT_TRUE(at::equal(shared, f64({1, 2})));
}

// The conformance alias case, loaded the way the runtime will: one Linear(16, 16) shared by two
// layer names.
TEST(AssignStateDict, LoadsTheConformanceAliasModel) {
  const klay::StateDict sd =
      klay::load_state_dict((klay_test::conformance_dir() / "model_arbitrary_and_alias/weights.pth").string());
  at::Tensor weight = at::zeros({16, 16}, at::kFloat), bias = at::zeros({16}, at::kFloat);
  klay::assign_state_dict(sd,
                          {{"dense.module.weight", weight}, {"dense.module.bias", bias},
                           {"second_pass.module.weight", weight}, {"second_pass.module.bias", bias}},
                          "weights.pth");
  EXPECT_TRUE(at::equal(weight, sd.find("dense.module.weight")->to(at::kFloat)));
  EXPECT_TRUE(at::equal(bias, sd.find("second_pass.module.bias")->to(at::kFloat)));
}

TEST(AssignStateDict, RefusesNaNAndInfNamingTheTensorUnlessAllowedForDebugging) {
  at::Tensor good = at::zeros({2}, at::kDouble), bad = at::zeros({3}, at::kDouble);
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const klay::StateDict sd = make_sd({{"good", f64({1, 2})}, {"bad", f64({nan, -inf, 1})}});
  unsetenv(klay::kAllowNonFiniteVariable);
  expect_error([&] { klay::assign_state_dict(sd, {{"good", good}, {"bad", bad}}, "model.pth"); },
               {"model.pth: weights do not fit the model", "NaN or Inf values", klay::kAllowNonFiniteVariable,
                "bad (1 NaN, 1 Inf of 3 values)"});
  EXPECT_EQ(good.count_nonzero().item<int64_t>(), 0) << "nothing is written when the file does not fit";

  setenv(klay::kAllowNonFiniteVariable, "1", 1);
  klay::assign_state_dict(sd, {{"good", good}, {"bad", bad}}, "model.pth");
  unsetenv(klay::kAllowNonFiniteVariable);
  EXPECT_TRUE(std::isnan(bad[0].item<double>()));
  EXPECT_TRUE(at::equal(good, f64({1, 2})));
}

}  // namespace
