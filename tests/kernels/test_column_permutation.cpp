// The column permutation against index_select: values, gradients and second derivatives, both
// types, a strided input, with the kernels off, and permutations that are not.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <vector>

#include "base/error.hpp"
#include "kernels/column_permutation.hpp"
#include "kernels/kernel_autograd.hpp"

namespace klay::kernels {
namespace {

const std::vector<int64_t> kColumns{0, 4, 1, 5, 7, 2, 6, 3};

TEST(ColumnPermutation, ValuesAndGradientsMatchIndexSelect) {
  const ColumnPermutation permutation(kColumns);
  const at::Tensor index = at::tensor(kColumns, at::kLong);
  for (const bool fused : {true, false}) {
    set_fused_kernels_enabled(fused);
    for (const at::ScalarType type : {at::kDouble, at::kFloat}) {
      at::manual_seed(1);
      const at::Tensor x = at::randn({1000, 8}, at::TensorOptions().dtype(type)).requires_grad_(true);
      const at::Tensor probe = at::randn({1000, 8}, x.options());
      const at::Tensor ours = permutation.apply(x), reference = x.index_select(1, index);
      EXPECT_TRUE(at::equal(ours, reference));
      const at::Tensor grad = torch::autograd::grad({(ours * probe).sum()}, {x}, {}, true, true)[0];
      const at::Tensor grad_reference = torch::autograd::grad({(reference * probe).sum()}, {x}, {}, true, true)[0];
      EXPECT_TRUE(at::equal(grad, grad_reference));
      // Second order: d/dx of (grad·grad) through the backward's own permutation.
      const at::Tensor second = torch::autograd::grad({(grad * grad * x).sum()}, {x})[0];
      const at::Tensor second_reference = torch::autograd::grad({(grad_reference * grad_reference * x).sum()}, {x})[0];
      EXPECT_TRUE(at::equal(second, second_reference));
    }
  }
  set_fused_kernels_enabled(true);
}

TEST(ColumnPermutation, TakesAStridedInput) {
  const ColumnPermutation permutation(kColumns);
  const at::Tensor wide = at::randn({50, 16}, at::kDouble), x = wide.narrow(1, 3, 8);
  EXPECT_TRUE(at::equal(permutation.apply(x), x.index_select(1, at::tensor(kColumns, at::kLong))));
}

TEST(ColumnPermutation, RefusesWhatIsNotAPermutation) {
  EXPECT_THROW(ColumnPermutation({0, 1, 1}), Error);
  EXPECT_THROW(ColumnPermutation({0, 3, 1}), Error);
  EXPECT_THROW(ColumnPermutation({-1, 0}), Error);
  const ColumnPermutation permutation({1, 0});
  EXPECT_THROW(permutation.apply(at::zeros({4, 3}, at::kDouble)), Error);
}

}  // namespace
}  // namespace klay::kernels
