// max|a − b| / max|b| (or / 1 when b is zero): how the kernels' tests compare a kernel with the
// composite path it replaces.
#pragma once
#include <ATen/ATen.h>

namespace klay::kernels {

inline double relative_error(const at::Tensor& a, const at::Tensor& b) {
  const double scale = b.abs().max().item<double>();
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>() / (scale > 0 ? scale : 1.0);
}

}  // namespace klay::kernels
