// The segment-sum kernel against the composite zeros + scatter_add_ it replaces: the same bits
// forward, the same gradients, and second derivatives through its differentiable backward.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <string>
#include <vector>

#include "base/error.hpp"
#include "kernels/segment_sum.hpp"

namespace klay::kernels {
namespace {

struct SumAndGradients {
  at::Tensor sum, grad, second;
};

// The sum, d(probe·sum)/d(src) with create_graph, and the derivative of Σ grad² with respect to src.
SumAndGradients evaluate(bool fused, const at::Tensor& values, const at::Tensor& index, int64_t segments) {
  set_fused_kernels_enabled(fused);
  const at::Tensor src = values.clone().requires_grad_();
  const at::Tensor sum = segment_sum(src, index, segments);
  const at::Tensor probe = at::arange(1, sum.numel() + 1, sum.options()).view_as(sum);
  const at::Tensor grad = torch::autograd::grad({(sum * sum * probe).sum()}, {src}, {}, true, true)[0];
  const at::Tensor second = torch::autograd::grad({(grad * grad).sum()}, {src})[0];
  set_fused_kernels_enabled(true);
  return {sum.detach(), grad.detach(), second};
}

TEST(SegmentSum, SameBitsAndGradientsAsTheCompositePath) {
  const at::Tensor index = at::randint(0, 5, {300}, at::kLong);
  for (at::ScalarType dtype : {at::kDouble, at::kFloat})
    for (const std::vector<int64_t>& shape : {std::vector<int64_t>{300}, std::vector<int64_t>{300, 1}}) {
      SCOPED_TRACE(std::string(c10::toString(dtype)) + " " + std::to_string(shape.size()) + "-d");
      const at::Tensor values = at::randn(shape, at::TensorOptions().dtype(dtype));
      const int64_t calls = segment_sum_counters().forward_calls;
      const SumAndGradients fused = evaluate(true, values, index, 7), composite = evaluate(false, values, index, 7);
      EXPECT_EQ(segment_sum_counters().forward_calls, calls + 1);
      EXPECT_TRUE(at::equal(fused.sum, composite.sum));
      EXPECT_TRUE(at::equal(fused.grad, composite.grad));
      EXPECT_TRUE(at::allclose(fused.second, composite.second, 1e-12, 0));
    }
}

TEST(SegmentSum, WiderRowsTakeTheCompositePath) {
  const int64_t calls = segment_sum_counters().forward_calls;
  const at::Tensor sum = segment_sum(at::ones({4, 2}, at::kDouble), at::tensor({0, 1, 0, 1}, at::kLong), 2);
  EXPECT_EQ(segment_sum_counters().forward_calls, calls);
  EXPECT_TRUE(at::equal(sum, at::tensor({2.0, 0.0, 2.0, 0.0}, at::kDouble).view({2, 2})));
}

TEST(SegmentSum, AnIndexOutsideTheSegmentsIsAnErrorNamingTheRow) {
  try {
    segment_sum(at::ones({3}, at::kDouble), at::tensor({0, 4, 1}, at::kLong), 2);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 1 has index 4, outside 0..1"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace klay::kernels
