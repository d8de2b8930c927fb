// Periodic neighbour search: every ordered pair (i, j, S) with |pos[j] + S·cell − pos[i]| < r,
// except i == j with S = 0, for orthogonal or triclinic cells, periodic in any subset of the three
// directions, with any number of periodic images (cells smaller than r work). This is the
// neighbour convention of the reference data (docs/design.md#neighbours).
// Torch-free so the LAMMPS glue and the tools can use it without the runtime.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

namespace klay::md {

struct Cell {
  // Rows are the lattice vectors a, b, c (Cartesian). A non-periodic direction's vector is not
  // used and may be zero (an isolated cluster has an all-zero cell).
  std::array<std::array<double, 3>, 3> vectors{};
  std::array<bool, 3> periodic{false, false, false};

  static Cell open() { return Cell{}; }
  bool any_periodic() const { return periodic[0] || periodic[1] || periodic[2]; }
  // S0·a + S1·b + S2·c, summed in that order (the order the reference data used).
  std::array<double, 3> translation(const std::array<int, 3>& offset) const;
};

struct NeighborPair {
  int64_t i;
  int64_t j;
  std::array<int, 3> offset;  // S: the neighbour is the image pos[j] + S·cell
};

// All pairs within `cutoff` of atom positions `positions` ([n][3], not necessarily wrapped into the
// cell), sorted by (i, j, S0, S1, S2). A cell-list search: O(n) for a fixed density.
// Throws klay::Error for a non-positive cutoff, non-finite coordinates or degenerate periodic
// lattice vectors.
std::vector<NeighborPair> find_neighbors(const double* positions, int64_t n, const Cell& cell,
                                         double cutoff);

// The distance test every part of the project uses, so that edge sets agree bit for bit:
// sqrt(dx² + dy² + dz²) < cutoff, as the Python reference computes |v|. Inline: the staged graph
// builder calls it once per listed neighbour.
inline bool within_cutoff(double dx, double dy, double dz, double cutoff) {
  return std::sqrt(dx * dx + dy * dy + dz * dz) < cutoff;
}

}  // namespace klay::md
