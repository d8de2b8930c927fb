// Feature columns a kernel does not write, set to zero row by row on the threads. A linear or a
// self-connection that computes some of its outputs only (dead features) leaves the others zero,
// as does the gradient of the inputs it does not read; ATen's zeros wrote every column of such a
// tensor first, as an operation of its own between the kernels' loops (two per evaluation of the
// examples/si model).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace klay::kernels {

// (first column, count) of each run of columns.
using ColumnRuns = std::vector<std::pair<int64_t, int64_t>>;

// t: [rows, width], contiguous, floating point.
void zero_columns(at::Tensor& t, const ColumnRuns& columns);

}  // namespace klay::kernels
