// Irrep entries between e3nn's multiplicity-major feature layout and the component-major matrices
// the linear, self-connection and convolution kernels work on: an entry of `mul` copies of a
// d-wide irrep holds copy u, component k at column + u·d + k of a feature row; in the matrix it is
// rows k (of `total` columns each) and columns first + u.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/vector_units.hpp"

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

// One irrep entry (`mul` copies of a d-wide irrep) over rows of both layouts: row n of the
// features holds copy u, component k at n·feature_stride + u·d + k; row n of the matrix at
// n·row_stride + k·component_stride + u.
struct EntryLayout {
  int64_t mul, d, feature_stride, row_stride, component_stride;
};

// The copies with d known at compile time (D > 0), which the compiler turns into vector shuffles
// (2-7x faster than the loops over a run-time d, float32 the most); D = 0 reads d. For d = 3 the
// copy-outer order measured faster, for the others the component-outer one. With Add the features
// are summed into rather than written.
template <typename T, int D>
KLAY_KERNEL_BODY void entry_to_component_major(const EntryLayout& e, int64_t rows, const T* __restrict features,
                                               T* __restrict matrix) {
  const int64_t d = D > 0 ? D : e.d, mul = e.mul, stride = e.component_stride;
  for (int64_t n = 0; n < rows; ++n) {
    const T* __restrict f = features + n * e.feature_stride;
    T* __restrict m = matrix + n * e.row_stride;
    if constexpr (D == 3) {
      for (int64_t u = 0; u < mul; ++u)
        for (int64_t k = 0; k < d; ++k) m[k * stride + u] = f[u * d + k];
    } else {
      for (int64_t k = 0; k < d; ++k)
        for (int64_t u = 0; u < mul; ++u) m[k * stride + u] = f[u * d + k];
    }
  }
}
template <typename T, int D, bool Add>
KLAY_KERNEL_BODY void entry_to_multiplicity_major(const EntryLayout& e, int64_t rows, const T* __restrict matrix,
                                                  T* __restrict features) {
  const int64_t d = D > 0 ? D : e.d, mul = e.mul, stride = e.component_stride;
  for (int64_t n = 0; n < rows; ++n) {
    T* __restrict f = features + n * e.feature_stride;
    const T* __restrict m = matrix + n * e.row_stride;
    if constexpr (D == 3) {
      for (int64_t u = 0; u < mul; ++u)
        for (int64_t k = 0; k < d; ++k) f[u * d + k] = Add ? f[u * d + k] + m[k * stride + u] : m[k * stride + u];
    } else {
      for (int64_t k = 0; k < d; ++k)
        for (int64_t u = 0; u < mul; ++u) f[u * d + k] = Add ? f[u * d + k] + m[k * stride + u] : m[k * stride + u];
    }
  }
}

// The widths compiled: the irreps of l ≤ 3.
#define KLAY_FOR_IRREP_WIDTH(d, CALL) \
  do {                                \
    switch (d) {                      \
      case 1: CALL(1); break;         \
      case 3: CALL(3); break;         \
      case 5: CALL(5); break;         \
      case 7: CALL(7); break;         \
      default: CALL(0); break;        \
    }                                 \
  } while (0)

// Multiplicity-major rows to component-major ones and back, inlined into kernels that run in an
// entry point of their own (kernels/vector_units.hpp).
template <typename T>
KLAY_KERNEL_BODY void copy_to_component_major(const EntryLayout& e, int64_t rows, const T* features, T* matrix) {
#define KLAY_TO_COMPONENT_MAJOR(D) entry_to_component_major<T, D>(e, rows, features, matrix)
  KLAY_FOR_IRREP_WIDTH(e.d, KLAY_TO_COMPONENT_MAJOR);
#undef KLAY_TO_COMPONENT_MAJOR
}
template <typename T, bool Add = false>
KLAY_KERNEL_BODY void copy_to_multiplicity_major(const EntryLayout& e, int64_t rows, const T* matrix, T* features) {
#define KLAY_TO_MULTIPLICITY_MAJOR(D) entry_to_multiplicity_major<T, D, Add>(e, rows, matrix, features)
  KLAY_FOR_IRREP_WIDTH(e.d, KLAY_TO_MULTIPLICITY_MAJOR);
#undef KLAY_TO_MULTIPLICITY_MAJOR
}

// The same from code outside the entry points: each call runs in the widest vector units the CPU
// has (irrep_blocks.cpp), so hand it many rows at a time.
template <typename T>
void to_component_major(const EntryLayout& e, int64_t rows, const T* features, T* matrix);
template <typename T>
void to_multiplicity_major(const EntryLayout& e, int64_t rows, const T* matrix, T* features, bool add);

// The layout of block b of a group (all blocks d wide, the matrix rows `total` wide) for feature
// rows of `width` columns: from column b.column of the features to column b.first of the matrix.
inline EntryLayout block_layout(const IrrepBlock& b, int64_t d, int64_t total, int64_t width) {
  return {b.mul, d, width, d * total, total};
}

// Rows of features [rows, width] into the group's matrix rows [rows·d, total] and back.
template <typename T, typename Blocks>
KLAY_KERNEL_BODY void gather_rows(const T* features, int64_t width, int64_t rows, const Blocks& blocks, int64_t d,
                                  int64_t total, T* matrix) {
  for (const IrrepBlock& b : blocks)
    copy_to_component_major(block_layout(b, d, total, width), rows, features + b.column, matrix + b.first);
}
template <typename T, typename Blocks>
KLAY_KERNEL_BODY void scatter_rows(const T* matrix, const Blocks& blocks, int64_t d, int64_t total, T* features,
                                   int64_t width, int64_t rows) {
  for (const IrrepBlock& b : blocks)
    copy_to_multiplicity_major(block_layout(b, d, total, width), rows, matrix + b.first, features + b.column);
}

}  // namespace klay::kernels
