// Matrix products over rows (edges or atoms) split between the threads: each thread multiplies one
// slice of the rows on its own. OpenBLAS threads a product only by its own size rule, and for the
// tall, narrow products of the kernels ([edges, 8..64] x [8..64, 16..160]) its 2-thread runs are
// 2-3x slower than 1 thread (bench/README.md#row-products), while slices of rows scale with the
// threads. A row's result does not depend on how the rows are split.
#pragma once
#include <ATen/core/Tensor.h>

namespace klay::kernels {

// a [n, k] · b [k, m], times `factor` [n, m] elementwise where it is given, written to out [n, m]
// (any strides ATen's mm_out accepts); not recorded by autograd, as out= products never are. The
// factor is applied to each tile of the product while it is in registers (the chain rule's
// activation derivatives), not in a pass of its own.
void row_matmul_out(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, const at::Tensor& factor = {});

// a [n, k] · b [k, m] (times `factor`) as a new tensor; ATen's operators where autograd records it.
at::Tensor row_matmul(const at::Tensor& a, const at::Tensor& b, const at::Tensor& factor = {});

// Whether rows_times takes a right operand of `bytes` (what fits the register tiles' cache).
bool rows_times_takes(int64_t bytes);

// c [rows, cols] = a [rows, inner] · b [inner, cols] (times factor [rows, cols] elementwise where it
// is not null) on the calling thread, all row-major with the given leading dimensions, as
// row_matmul computes each row (the same numbers): for kernels that gather their own operands a
// block of rows at a time into cache.
template <typename T>
void rows_times(const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, int64_t rows, int64_t inner,
                int64_t cols, const T* factor = nullptr, int64_t ldf = 0);

}  // namespace klay::kernels
