// Distorted 8-atom diamond silicon cells (a = 5.43 Å, Gaussian displacements) with arbitrary
// labels, for tests whose checks do not depend on the label values (batching, gradients).
#pragma once
#include <array>
#include <random>
#include <vector>

#include "md/xyz.hpp"

namespace diamond {

inline std::vector<klay::md::LabelledFrame> distorted_frames(int n_frames, uint64_t seed, double displacement) {
  constexpr double kA = 5.43;
  const double basis[8][3] = {{0, 0, 0}, {0, 0.5, 0.5}, {0.5, 0, 0.5}, {0.5, 0.5, 0},
                              {0.25, 0.25, 0.25}, {0.25, 0.75, 0.75}, {0.75, 0.25, 0.75}, {0.75, 0.75, 0.25}};
  std::mt19937_64 generator(seed);
  std::normal_distribution<double> noise(0.0, displacement);
  std::vector<klay::md::LabelledFrame> frames(n_frames);
  for (auto& f : frames) {
    for (int k = 0; k < 3; ++k) {
      f.structure.cell.vectors[k][k] = kA;
      f.structure.cell.periodic[k] = true;
    }
    f.structure.has_lattice = true;
    for (const auto& b : basis) {
      f.structure.elements.push_back("Si");
      for (int k = 0; k < 3; ++k) f.structure.positions.push_back(kA * b[k] + noise(generator));
    }
  }
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
