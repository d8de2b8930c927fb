// Irrep entries between e3nn's multiplicity-major feature layout and the component-major matrices
// the linear and self-connection kernels multiply: an entry of `mul` copies of a d-wide irrep holds
// copy u, component k at column + u·d + k of a feature row; in the matrix it is rows k (of
// `total` columns each) and columns first + u.
#pragma once
#include <algorithm>
#include <cstdint>

namespace klay::kernels {

struct IrrepBlock {
  int64_t column;  // the entry's first column in the feature row
  int64_t mul;
  int64_t first;   // the entry's first column in the matrix rows
};

// The feature columns the blocks cover, from the first to the last (the columns between too).
struct ColumnSpan {
  int64_t first = 0, count = 0;
};
template <typename Blocks>
inline ColumnSpan column_span(const Blocks& blocks, int64_t d) {
  if (blocks.empty()) return {};
  int64_t first = blocks.front().column, end = first;
  for (const IrrepBlock& b : blocks) {
    first = std::min(first, b.column);
    end = std::max(end, b.column + b.mul * d);
  }
  return {first, end - first};
}

// f(feature column, matrix index) for every copy and component of the blocks (any range of them).
template <typename Blocks, typename F>
inline void for_each_entry(const Blocks& blocks, int64_t d, int64_t total, const F& f) {
  for (const IrrepBlock& b : blocks)
    for (int64_t u = 0; u < b.mul; ++u)
      for (int64_t k = 0; k < d; ++k) f(b.column + u * d + k, k * total + b.first + u);
}

// One feature row's blocks into the d matrix rows that start at matrix_rows, and back.
template <typename T, typename Blocks>
inline void gather_row(const T* features_row, const Blocks& blocks, int64_t d, int64_t total, T* matrix_rows) {
  for_each_entry(blocks, d, total, [&](int64_t column, int64_t m) { matrix_rows[m] = features_row[column]; });
}
template <typename T, typename Blocks>
inline void scatter_row(const T* matrix_rows, const Blocks& blocks, int64_t d, int64_t total, T* features_row) {
  for_each_entry(blocks, d, total, [&](int64_t column, int64_t m) { features_row[column] = matrix_rows[m]; });
}

}  // namespace klay::kernels
