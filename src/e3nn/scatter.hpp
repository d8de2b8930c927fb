// The scatter-sum of torch_runstats / torch_scatter / KLay's own helper (docs/layers.md#scatter),
// shared by the convolution layers. No state.
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace klay::e3nn {

// out = zeros([dim_size, src.shape[1:]]); out[index[e]] += src[e] (index: int64 [E]). Differentiable
// with respect to src; results differ from Python only by summation-order rounding.
at::Tensor scatter_sum(const at::Tensor& src, const at::Tensor& index, int64_t dim_size);

}  // namespace klay::e3nn
