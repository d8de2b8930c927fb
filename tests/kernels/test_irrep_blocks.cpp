// The layout copies between e3nn's multiplicity-major irrep entries and component-major rows,
// against the definition element by element: every compiled width and the general one, widths of
// copies that fill vectors and that do not, strided rows on both sides, written and added, in both
// types and in every entry point the CPU has.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/irrep_blocks.hpp"
#include "kernels/vector_units.hpp"

namespace klay::kernels {
namespace {

template <typename T>
std::vector<T> random_values(size_t count, unsigned seed) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::vector<T> values(count);
  for (T& v : values) v = static_cast<T>(uniform(engine));
  return values;
}

// Rows of an entry at column `offset` of wider feature rows, and of a matrix whose rows are wider
// than the entry's d components of `stride` columns each.
struct Case {
  int64_t rows, mul, d, offset, feature_stride, component_stride, row_stride;
};

std::vector<Case> cases() {
  std::vector<Case> all;
  for (const int64_t d : {1, 2, 3, 5, 7, 9})
    for (const int64_t mul : {1, 4, 5, 16, 17}) {
      const int64_t component_stride = mul + 3;
      all.push_back({3, mul, d, 2, mul * d + 7, component_stride, d * component_stride + 1});
    }
  return all;
}

template <typename T>
void check_copies() {
  for (const bool wide : {false, true}) {
    set_wide_vector_units_enabled(wide);
    for (const Case& c : cases()) {
      SCOPED_TRACE(testing::Message() << "wide " << wide << ", mul " << c.mul << ", d " << c.d);
      const EntryLayout layout{c.mul, c.d, c.feature_stride, c.row_stride, c.component_stride};
      const std::vector<T> features = random_values<T>(c.rows * c.feature_stride, 1);
      const std::vector<T> matrix = random_values<T>(c.rows * c.row_stride, 2);
      const auto feature_at = [&](int64_t n, int64_t u, int64_t k) { return n * c.feature_stride + c.offset + u * c.d + k; };
      const auto matrix_at = [&](int64_t n, int64_t u, int64_t k) { return n * c.row_stride + k * c.component_stride + u; };

      std::vector<T> gathered = matrix;
      to_component_major(layout, c.rows, features.data() + c.offset, gathered.data());
      std::vector<T> expected = matrix;
      for (int64_t n = 0; n < c.rows; ++n)
        for (int64_t u = 0; u < c.mul; ++u)
          for (int64_t k = 0; k < c.d; ++k) expected[matrix_at(n, u, k)] = features[feature_at(n, u, k)];
      EXPECT_EQ(gathered, expected);  // the entries copied, every other value left as it was

      for (const bool add : {false, true}) {
        std::vector<T> scattered = features;
        to_multiplicity_major(layout, c.rows, matrix.data(), scattered.data() + c.offset, add);
        std::vector<T> back = features;
        for (int64_t n = 0; n < c.rows; ++n)
          for (int64_t u = 0; u < c.mul; ++u)
            for (int64_t k = 0; k < c.d; ++k) {
              T& f = back[feature_at(n, u, k)];
              f = add ? f + matrix[matrix_at(n, u, k)] : matrix[matrix_at(n, u, k)];
            }
        EXPECT_EQ(scattered, back) << "add " << add;
      }
    }
  }
  set_wide_vector_units_enabled(true);
}

TEST(IrrepBlocks, CopiesMatchTheDefinitionInDouble) { check_copies<double>(); }
TEST(IrrepBlocks, CopiesMatchTheDefinitionInFloat) { check_copies<float>(); }

// A group of several entries of one width (the linear's inputs): each entry lands in its own
// columns of the group's matrix rows, and scattering the matrix back restores the features.
TEST(IrrepBlocks, GroupRowsRoundTrip) {
  const int64_t d = 3, width = 40, rows = 5;
  const std::vector<IrrepBlock> blocks{{1, 4, 0}, {20, 2, 4}, {27, 3, 6}};  // column, mul, first
  const int64_t total = 9;
  const std::vector<double> features = random_values<double>(rows * width, 3);
  std::vector<double> matrix(rows * d * total, -7.0);
  gather_rows(features.data(), width, rows, blocks, d, total, matrix.data());
  for (int64_t n = 0; n < rows; ++n)
    for (const IrrepBlock& b : blocks)
      for (int64_t u = 0; u < b.mul; ++u)
        for (int64_t k = 0; k < d; ++k)
          EXPECT_EQ(matrix[(n * d + k) * total + b.first + u], features[n * width + b.column + u * d + k]);
  std::vector<double> restored(features.size(), 0.0);
  scatter_rows(matrix.data(), blocks, d, total, restored.data(), width, rows);
  for (int64_t n = 0; n < rows; ++n)
    for (const IrrepBlock& b : blocks)
      for (int64_t j = 0; j < b.mul * d; ++j)
        EXPECT_EQ(restored[n * width + b.column + j], features[n * width + b.column + j]);
}

}  // namespace
}  // namespace klay::kernels
