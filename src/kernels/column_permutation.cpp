// The column permutation kernel (see the header for why).
#include "kernels/column_permutation.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <string>

#include "base/error.hpp"
#include "kernels/kernel_autograd.hpp"

namespace klay::kernels {
namespace {

constexpr int64_t kRowsPerTask = 256;

template <typename T>
void gather_columns(const at::Tensor& x, const at::Tensor& columns, at::Tensor& out) {
  const int64_t n = columns.numel();
  const int64_t* c = columns.data_ptr<int64_t>();
  const T* in = x.data_ptr<T>();
  T* o = out.data_ptr<T>();
  at::parallel_for(0, x.size(0), kRowsPerTask, [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r)
      for (int64_t j = 0; j < n; ++j) o[r * n + j] = in[r * n + c[j]];
  });
}

at::Tensor permuted(const at::Tensor& x, const at::Tensor& columns) {
  if (!kernels_take({x}) || x.dim() != 2) return x.index_select(1, columns);
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty_like(xc);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "permute_columns", [&] { gather_columns<scalar_t>(xc, columns, out); });
  return out;
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class PermuteColumns : public torch::autograd::Function<PermuteColumns> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& columns,
                            const at::Tensor& inverse) {
    ctx->save_for_backward({columns, inverse});
    return permuted(x, columns);
  }
  // The inverse permutation, through this function again: differentiable to every order.
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& g = grad_outputs[0];
    return {g.defined() ? PermuteColumns::apply(g, saved[1], saved[0]) : at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

ColumnPermutation::ColumnPermutation(const std::vector<int64_t>& columns) {
  const int64_t n = static_cast<int64_t>(columns.size());
  std::vector<int64_t> inverse(columns.size(), -1);
  for (int64_t j = 0; j < n; ++j) {
    const int64_t c = columns[j];
    if (c < 0 || c >= n || inverse[c] != -1)
      throw Error("column permutation: " + std::to_string(c) + " at position " + std::to_string(j) +
                  " is outside 0.." + std::to_string(n - 1) + " or repeated");
    inverse[c] = j;
  }
  columns_ = at::tensor(columns, at::kLong);
  inverse_ = at::tensor(inverse, at::kLong);
}

at::Tensor ColumnPermutation::apply(const at::Tensor& x) const {
  if (x.dim() != 2 || x.size(1) != size())
    throw Error("column permutation of " + std::to_string(size()) + " columns: the input is " + c10::str(x.sizes()));
  const at::Device device = x.device();
  if (device.is_cpu()) return PermuteColumns::apply(x, columns_, inverse_);
  return PermuteColumns::apply(x, columns_.to(device), inverse_.to(device));
}

}  // namespace klay::kernels
