// Row-sliced products against at::mm: tall and short operands, a transposed right operand, an
// output that is a column range of a wider tensor, every tiling of the columns in both types, an
// elementwise factor, and the autograd-recorded fallback.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include "kernels/row_matmul.hpp"
#include "kernels/vector_units.hpp"

namespace klay::kernels {
namespace {

// max |ours − at::mm| relative to the largest entry of at::mm's result.
double relative_difference(const at::Tensor& ours, const at::Tensor& reference) {
  return (ours - reference).abs().max().item<double>() / reference.abs().max().item<double>();
}

class RowMatmul : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    saved_threads_ = at::get_num_threads();
    at::set_num_threads(GetParam());
  }
  void TearDown() override { at::set_num_threads(saved_threads_); }
  int saved_threads_ = 1;
};

// With the AVX2 register tiles and, switched off, with BLAS on each slice.
TEST_P(RowMatmul, MatchesMmForTallAndShortOperands) {
  at::manual_seed(1);
  const auto options = at::TensorOptions().dtype(at::kDouble);
  for (const bool wide : {true, false}) {
    set_wide_vector_units_enabled(wide);
    for (const auto& [rows, inner, cols] : {std::tuple{7492, 16, 48}, {4570, 48, 16}, {1367, 80, 48},
                                            {129, 8, 16}, {63, 16, 16}, {1, 3, 5}, {0, 4, 4},
                                            {300, 600, 64}}) {  // the last: a right operand for BLAS
      const at::Tensor a = at::randn({rows, inner}, options), b = at::randn({inner, cols}, options);
      const at::Tensor reference = at::mm(a, b);
      if (rows == 0) {
        EXPECT_EQ(row_matmul(a, b).sizes(), reference.sizes());
        continue;
      }
      EXPECT_LE(relative_difference(row_matmul(a, b), reference), 1e-15) << rows << "x" << inner << "x" << cols;
      const at::Tensor bt = at::randn({cols, inner}, options);
      EXPECT_LE(relative_difference(row_matmul(a, bt.t()), at::mm(a, bt.t())), 1e-15) << "transposed right operand";
    }
  }
  set_wide_vector_units_enabled(true);
}

TEST_P(RowMatmul, WritesAColumnRangeOfAWiderOutput) {
  at::manual_seed(2);
  const auto options = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor a = at::randn({1000, 12}, options), b = at::randn({12, 7}, options);
  at::Tensor wide = at::full({1000, 20}, -1.0, options);
  at::Tensor columns = wide.narrow(1, 5, 7);
  row_matmul_out(columns, a, b);
  EXPECT_LE(relative_difference(wide.narrow(1, 5, 7), at::mm(a, b)), 1e-15);
  EXPECT_TRUE(wide.narrow(1, 0, 5).eq(-1.0).all().item<bool>());
  EXPECT_TRUE(wide.narrow(1, 12, 8).eq(-1.0).all().item<bool>());
}

// Every split of the columns into register tiles (three, two or one register, the last partial
// or not), row counts around the tiles' 4 and 8, and several inner sizes, in both types.
TEST_P(RowMatmul, EveryColumnTilingInBothTypes) {
  at::manual_seed(3);
  for (const auto& [type, tolerance] : {std::pair{at::kDouble, 1e-15}, std::pair{at::kFloat, 1e-6}}) {
    const auto options = at::TensorOptions().dtype(type);
    for (int64_t cols = 1; cols <= 50; ++cols)
      for (const int64_t rows : {1, 3, 4, 7, 8, 9, 17, 300})
        for (const int64_t inner : {0, 1, 5, 64, 65}) {
          const at::Tensor a = at::randn({rows, inner}, options), b = at::randn({inner, cols}, options);
          const at::Tensor ours = row_matmul(a, b), reference = at::mm(a, b);
          if (inner == 0) {
            EXPECT_TRUE(ours.eq(0).all().item<bool>());
            continue;
          }
          EXPECT_LE(relative_difference(ours, reference), tolerance)
              << c10::toString(type) << " " << rows << "x" << inner << "x" << cols;
        }
  }
}

// The factor multiplies each entry of the product once: the same bits as the product times it, on
// the tiles (every column tiling, both types), on BLAS with wide units off, and past the tiles'
// largest right operand.
TEST_P(RowMatmul, AFactorMultipliesEachEntryOfTheProduct) {
  at::manual_seed(5);
  for (const bool wide : {true, false}) {
    set_wide_vector_units_enabled(wide);
    for (const at::ScalarType type : {at::kDouble, at::kFloat}) {
      const auto options = at::TensorOptions().dtype(type);
      for (const auto& [rows, inner, cols] : {std::tuple{2400, 64, 64}, {301, 8, 13}, {9, 5, 1}, {300, 600, 64}}) {
        const at::Tensor a = at::randn({rows, inner}, options), b = at::randn({inner, cols}, options);
        const at::Tensor factor = at::randn({rows, cols}, options);
        EXPECT_TRUE(at::equal(row_matmul(a, b, factor), row_matmul(a, b) * factor))
            << c10::toString(type) << " " << rows << "x" << inner << "x" << cols << (wide ? " tiles" : " BLAS");
      }
    }
  }
  set_wide_vector_units_enabled(true);
}

// Where autograd records the product, it is at::mm's own, with its gradients.
TEST_P(RowMatmul, OperandsThatRequireGradGetAutogradsProduct) {
  at::manual_seed(4);
  const auto options = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor a = at::randn({500, 6}, options).requires_grad_(true), b = at::randn({6, 9}, options);
  const at::Tensor product = row_matmul(a, b);
  ASSERT_TRUE(product.requires_grad());
  product.sum().backward();
  EXPECT_LE(relative_difference(a.grad(), at::ones({500, 9}, options).mm(b.t())), 1e-15);

  const at::Tensor factor = at::randn({500, 9}, options), scaled = row_matmul(a, b, factor);
  ASSERT_TRUE(scaled.requires_grad());
  const at::Tensor grad = torch::autograd::grad({scaled.sum()}, {a})[0];
  EXPECT_LE(relative_difference(grad, factor.mm(b.t())), 1e-15);
}

INSTANTIATE_TEST_SUITE_P(Threads, RowMatmul, ::testing::Values(1, 2, 3));

}  // namespace
}  // namespace klay::kernels
