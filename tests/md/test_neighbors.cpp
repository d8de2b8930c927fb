// Neighbour search against a brute-force enumeration of images and against the neighbour lists
// recorded by the Python reference generator (shared/conformance/model_*).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>
#include <tuple>

#include "md/neighbors.hpp"
#include "reference_cell.hpp"
#include "base/error.hpp"

using klay::md::Cell;
using klay::md::find_neighbors;
using klay::md::NeighborPair;

namespace {

using Key = std::tuple<int64_t, int64_t, int, int, int>;

// Every image offset up to `images` in each periodic direction, tested one by one.
std::vector<Key> brute_force(const std::vector<double>& pos, const Cell& cell, double r, int images) {
  const int64_t n = static_cast<int64_t>(pos.size() / 3);
  std::vector<Key> out;
  const int k0 = cell.periodic[0] ? images : 0, k1 = cell.periodic[1] ? images : 0,
            k2 = cell.periodic[2] ? images : 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int s0 = -k0; s0 <= k0; ++s0)
        for (int s1 = -k1; s1 <= k1; ++s1)
          for (int s2 = -k2; s2 <= k2; ++s2) {
            if (i == j && s0 == 0 && s1 == 0 && s2 == 0) continue;
            double d2 = 0;
            for (int c = 0; c < 3; ++c) {
              const double t = s0 * cell.vectors[0][c] + s1 * cell.vectors[1][c] + s2 * cell.vectors[2][c];
              const double d = pos[3 * j + c] + t - pos[3 * i + c];
              d2 += d * d;
            }
            if (std::sqrt(d2) < r) out.emplace_back(i, j, s0, s1, s2);
          }
  return out;  // generated in sorted order
}

std::vector<Key> keys(const std::vector<NeighborPair>& pairs) {
  std::vector<Key> out;
  for (const NeighborPair& p : pairs) out.emplace_back(p.i, p.j, p.offset[0], p.offset[1], p.offset[2]);
  return out;
}

std::vector<double> random_positions(int n, double spread, double offset, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(offset, offset + spread);
  std::vector<double> pos(3 * n);
  for (double& x : pos) x = u(rng);
  return pos;
}

Cell triclinic(double scale) {
  Cell cell;
  cell.vectors = {{{scale * 1.0, 0.0, 0.0}, {scale * 0.35, scale * 0.9, 0.0}, {-scale * 0.2, scale * 0.25, scale * 0.95}}};
  cell.periodic = {true, true, true};
  return cell;
}

}  // namespace

TEST(Neighbors, TriclinicMatchesBruteForce) {
  const Cell cell = triclinic(7.0);
  // Unwrapped positions, some outside the cell: offsets must refer to the given positions.
  const auto pos = random_positions(15, 9.0, -1.5, 7);
  const auto found = keys(find_neighbors(pos.data(), 15, cell, 4.0));
  EXPECT_EQ(found, brute_force(pos, cell, 4.0, 3));
  EXPECT_GT(found.size(), 100u);
}

TEST(Neighbors, CellMuchSmallerThanCutoffHasManyImages) {
  const Cell cell = triclinic(1.3);
  const auto pos = random_positions(2, 1.0, 0.0, 11);
  const auto found = keys(find_neighbors(pos.data(), 2, cell, 4.0));
  EXPECT_EQ(found, brute_force(pos, cell, 4.0, 8));
  // Each atom sees itself many times over: several shells of images.
  EXPECT_GT(found.size(), 200u);
}

TEST(Neighbors, PartiallyPeriodicSlab) {
  Cell cell = triclinic(5.0);
  cell.periodic = {true, false, true};
  const auto pos = random_positions(10, 12.0, -2.0, 3);
  EXPECT_EQ(keys(find_neighbors(pos.data(), 10, cell, 3.5)), brute_force(pos, cell, 3.5, 4));
  cell.periodic = {false, false, true};
  EXPECT_EQ(keys(find_neighbors(pos.data(), 10, cell, 3.5)), brute_force(pos, cell, 3.5, 4));
}

TEST(Neighbors, OpenClusterWithZeroCell) {
  const auto pos = random_positions(40, 10.0, 0.0, 5);
  const Cell cell = Cell::open();
  EXPECT_EQ(keys(find_neighbors(pos.data(), 40, cell, 3.0)), brute_force(pos, cell, 3.0, 0));
}

TEST(Neighbors, SparseOpenSystemAndIsolatedAtoms) {
  // Far apart atoms must not allocate a huge grid; an atom with no neighbour has no pairs.
  const std::vector<double> pos{0, 0, 0, 1.0, 0, 0, 1e5, 0, 0, 0, 1e5, 1e5};
  const auto found = keys(find_neighbors(pos.data(), 4, Cell::open(), 2.0));
  EXPECT_EQ(found, (std::vector<Key>{{0, 1, 0, 0, 0}, {1, 0, 0, 0, 0}}));
}

TEST(Neighbors, RejectsBadInput) {
  const std::vector<double> pos{0, 0, 0};
  EXPECT_THROW(find_neighbors(pos.data(), 1, Cell::open(), 0.0), klay::Error);
  Cell flat = triclinic(3.0);
  flat.vectors[2] = {3.0, 0.0, 0.0};  // parallel to a
  EXPECT_THROW(find_neighbors(pos.data(), 1, flat, 2.0), klay::Error);
  const std::vector<double> bad{0, NAN, 0};
  EXPECT_THROW(find_neighbors(bad.data(), 1, Cell::open(), 2.0), klay::Error);
}

// The edge lists the Python generator recorded, including order and offsets.
class ReferenceNeighbors : public ::testing::TestWithParam<const char*> {};

TEST_P(ReferenceNeighbors, ReproducesRecordedEdgesInOrder) {
  using namespace klay_test;
  const Value ref = read_reference(GetParam());
  const Value& s = member(ref, "structure");
  const Cell cell = reference_cell(s, member(s, "pbc").boolean);
  const auto pos = numbers(member(s, "positions"));
  const auto pairs = find_neighbors(pos.data(), static_cast<int64_t>(pos.size() / 3), cell, member(s, "r_max").as_double());

  const Value& inputs = member(ref, "inputs");
  const auto edges = integers(member(inputs, inputs.find("edge_index") ? "edge_index" : "edge_index0"));
  const auto offsets = integers(member(s, "cell_offsets_S"));
  const size_t n_edges = edges.size() / 2;
  ASSERT_EQ(pairs.size(), n_edges);
  for (size_t e = 0; e < n_edges; ++e) {
    EXPECT_EQ(pairs[e].i, edges[e]) << "edge " << e;
    EXPECT_EQ(pairs[e].j, edges[n_edges + e]) << "edge " << e;
    for (int k = 0; k < 3; ++k) EXPECT_EQ(pairs[e].offset[k], offsets[3 * e + k]) << "edge " << e;
  }
}

INSTANTIATE_TEST_SUITE_P(Conformance, ReferenceNeighbors,
                         ::testing::Values("model_nequip2_si8", "model_nequip2_box20",
                                           "model_nequip2_cluster5", "model_mace_model_box20"),
                         klay_test::case_folder_name);
