#include "kernels/zero_columns.hpp"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>

namespace klay::kernels {
namespace {

// Rows a thread takes at least: a few microseconds of stores.
constexpr int64_t kRowsPerTask = 256;

}  // namespace

void zero_columns(at::Tensor& t, const ColumnRuns& columns) {
  if (columns.empty() || t.numel() == 0) return;
  const int64_t width = t.size(1);
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "zero_columns", [&] {
    scalar_t* data = t.data_ptr<scalar_t>();
    at::parallel_for(0, t.size(0), kRowsPerTask, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n)
        for (const auto& [first, count] : columns)
          std::fill(data + n * width + first, data + n * width + first + count, scalar_t(0));
    });
  });
}

}  // namespace klay::kernels
