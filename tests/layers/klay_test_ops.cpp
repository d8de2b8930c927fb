// A custom operator for ArbitraryModule's `torch.ops.<ns>.<op>` targets: klay_test::twice(x) = 2x.
#include <ATen/ATen.h>
#include <torch/library.h>

namespace {
at::Tensor twice(const at::Tensor& x) { return x * 2; }
}  // namespace

TORCH_LIBRARY(klay_test, m) { m.def("twice(Tensor x) -> Tensor", twice); }
