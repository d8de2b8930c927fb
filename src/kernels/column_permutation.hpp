// A fixed permutation of a matrix's columns, y[:, j] = x[:, columns[j]], with autograd: MACE
// reorders its aggregated messages from irreps blocks to channel-major this way every step.
// ATen's index_select along columns is a slow strided loop, and its backward (index_add into
// zeros) slower still; a permutation's backward is the inverse permutation, one more gather.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace klay::kernels {

class ColumnPermutation {
 public:
  ColumnPermutation() = default;
  // Throws klay::Error unless `columns` holds each of 0..n-1 once.
  explicit ColumnPermutation(const std::vector<int64_t>& columns);

  // x [rows, n] with its columns permuted; differentiable to every order.
  at::Tensor apply(const at::Tensor& x) const;
  int64_t size() const { return columns_.defined() ? columns_.numel() : 0; }

 private:
  at::Tensor columns_, inverse_;  // int64 [n]
};

}  // namespace klay::kernels
