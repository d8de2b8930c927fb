// scatter_sum (docs/layers.md#scatter).
#include "e3nn/scatter.hpp"

#include <ATen/ATen.h>

#include <vector>

#include "base/error.hpp"

namespace klay::e3nn {

at::Tensor scatter_sum(const at::Tensor& src, const at::Tensor& index, int64_t dim_size) {
  if (src.dim() < 1 || index.dim() != 1 || index.size(0) != src.size(0))
    throw Error("scatter_sum: index must be 1-d with one entry per row of src");
  std::vector<int64_t> shape(src.sizes().begin(), src.sizes().end());
  shape[0] = dim_size;
  return at::zeros(shape, src.options()).index_add(0, index, src);
}

}  // namespace klay::e3nn
