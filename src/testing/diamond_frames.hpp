// Distorted diamond silicon cells (a = 5.43 Å, optionally stretched per axis, Gaussian
// displacements), and frames of them with arbitrary labels, for tests whose checks do not depend
// on the label values (batching, gradients, rotation invariance) and for the benchmarks' MD-sized
// structures. Test support shared by tests/ and bench/, outside libklay.
#pragma once
#include <array>
#include <random>
#include <vector>

#include "md/xyz.hpp"

namespace diamond {

// n_cells^3 conventional cells, cell axis k scaled by stretch[k], every coordinate displaced by
// N(0, displacement) drawn from `generator` atom by atom.
inline klay::md::Structure distorted_cell(int n_cells, const std::array<double, 3>& stretch,
                                          std::mt19937_64& generator, double displacement) {
  constexpr double kA = 5.43;
  const double basis[8][3] = {{0, 0, 0}, {0, 0.5, 0.5}, {0.5, 0, 0.5}, {0.5, 0.5, 0},
                              {0.25, 0.25, 0.25}, {0.25, 0.75, 0.75}, {0.75, 0.25, 0.75}, {0.75, 0.75, 0.25}};
  std::normal_distribution<double> noise(0.0, displacement);
  klay::md::Structure s;
  s.has_lattice = true;
  for (int k = 0; k < 3; ++k) {
    s.cell.vectors[k][k] = n_cells * kA * stretch[k];
    s.cell.periodic[k] = true;
  }
  for (int i = 0; i < n_cells; ++i)
    for (int j = 0; j < n_cells; ++j)
      for (int l = 0; l < n_cells; ++l)
        for (const auto& b : basis) {
          s.elements.push_back("Si");
          const int cell_index[3] = {i, j, l};
          for (int k = 0; k < 3; ++k) s.positions.push_back((cell_index[k] + b[k]) * kA * stretch[k] + noise(generator));
        }
  return s;
}

// n_frames single-cell (8-atom) frames from one generator.
inline std::vector<klay::md::LabelledFrame> distorted_frames(int n_frames, uint64_t seed, double displacement) {
  std::mt19937_64 generator(seed);
  std::vector<klay::md::LabelledFrame> frames(n_frames);
  for (auto& f : frames) f.structure = distorted_cell(1, {1, 1, 1}, generator, displacement);
  return frames;
}

// Every label set; the forces differ by atom and component so a force loss has no symmetry.
inline void label_arbitrarily(std::vector<klay::md::LabelledFrame>& frames) {
  for (auto& f : frames) {
    f.energy = 0.1 * static_cast<double>(f.structure.size());
    f.forces.resize(3 * f.structure.size());
    for (size_t i = 0; i < f.forces.size(); ++i) f.forces[i] = 0.01 * static_cast<double>(i % 7) - 0.03;
    f.virial = std::array<double, 9>{1, 0.1, 0, 0.1, 1, 0, 0, 0, 1};
  }
}

}  // namespace diamond
