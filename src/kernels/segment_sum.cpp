#include "kernels/segment_sum.hpp"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <string>
#include <vector>

#include "base/error.hpp"

namespace klay::kernels {
namespace {

KernelCallCounts g_calls;

at::Tensor composite_segment_sum(const at::Tensor& src, at::Tensor index, int64_t segments) {
  while (index.dim() < src.dim()) index = index.unsqueeze(-1);
  std::vector<int64_t> shape = src.sizes().vec();
  shape[0] = segments;
  return at::zeros(shape, src.options()).scatter_add_(0, index, src);
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class FusedSegmentSum : public torch::autograd::Function<FusedSegmentSum> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& src, const at::Tensor& index, int64_t segments) {
    ++g_calls.forward;
    const at::Tensor values = src.contiguous(), rows = index.contiguous();
    std::vector<int64_t> shape = src.sizes().vec();
    shape[0] = segments;
    at::Tensor out = at::zeros(shape, src.options());
    AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "segment_sum_forward", [&] {
      const scalar_t* v = values.data_ptr<scalar_t>();
      const int64_t* r = rows.data_ptr<int64_t>();
      scalar_t* o = out.data_ptr<scalar_t>();
      for (int64_t i = 0; i < values.size(0); ++i) {
        if (r[i] < 0 || r[i] >= segments)
          throw Error("segment sum: row " + std::to_string(i) + " has index " + std::to_string(r[i]) +
                      ", outside 0.." + std::to_string(segments - 1));
        o[r[i]] += v[i];
      }
    });
    ctx->save_for_backward({rows});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    ++g_calls.backward;
    const at::Tensor index = ctx->get_saved_variables()[0];
    const at::Tensor& g = grad_outputs[0];
    return {g.defined() ? g.index_select(0, index) : at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor segment_sum(const at::Tensor& src, const at::Tensor& index, int64_t segments) {
  const bool one_column = src.dim() == 1 || (src.dim() == 2 && src.size(1) == 1);
  const bool row_index = index.dim() == 1 && index.scalar_type() == at::kLong && index.device().is_cpu() &&
                         index.size(0) == (src.dim() > 0 ? src.size(0) : -1);
  if (!one_column || !row_index || !kernels_take({src}))
    return composite_segment_sum(src, index, segments);
  return FusedSegmentSum::apply(src, index, segments);
}

KernelCounters segment_sum_counters() { return g_calls.snapshot(); }

}  // namespace klay::kernels
