// Labelled frames of the soft-sphere pair potential in closed form (the potential of
// examples/soft_sphere and learnable_soft_sphere.yaml), computed by brute force over periodic
// images, not by any model: random atoms in a cubic box of kBox > kCutoff.
#pragma once
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "md/xyz.hpp"

namespace soft_sphere {

constexpr double kPrefactor = 0.05;
constexpr double kCutoff = 3.5;
constexpr double kBox = 5.5;

// E = sum over directed pairs (i, j') with i in the cell, j' any image within r_c, of
// p (r_c^2 - r^2)^2; F_i = -dE/dx_i = -8 p sum_j' (r_c^2 - r^2) (x_j' - x_i).
inline klay::md::LabelledFrame soft_sphere_frame(std::mt19937_64& generator, int n_atoms) {
  std::uniform_real_distribution<double> uniform(0.0, kBox);
  klay::md::LabelledFrame frame;
  klay::md::Structure& s = frame.structure;
  for (int k = 0; k < 3; ++k) {
    s.cell.vectors[k][k] = kBox;
    s.cell.periodic[k] = true;
  }
  s.has_lattice = true;
  for (int a = 0; a < n_atoms; ++a) {
    s.elements.push_back("Si");
    for (int k = 0; k < 3; ++k) s.positions.push_back(uniform(generator));
  }
  double energy = 0;
  frame.forces.assign(3 * n_atoms, 0.0);
  for (int i = 0; i < n_atoms; ++i)
    for (int j = 0; j < n_atoms; ++j)
      for (int sx = -1; sx <= 1; ++sx)
        for (int sy = -1; sy <= 1; ++sy)
          for (int sz = -1; sz <= 1; ++sz) {
            if (i == j && sx == 0 && sy == 0 && sz == 0) continue;
            const double shift[3] = {sx * kBox, sy * kBox, sz * kBox};
            double d[3], r2 = 0;
            for (int k = 0; k < 3; ++k) {
              d[k] = s.positions[3 * j + k] + shift[k] - s.positions[3 * i + k];
              r2 += d[k] * d[k];
            }
            if (std::sqrt(r2) >= kCutoff) continue;
            const double gap = kCutoff * kCutoff - r2;
            energy += kPrefactor * gap * gap;
            for (int k = 0; k < 3; ++k) frame.forces[3 * i + k] -= 8 * kPrefactor * gap * d[k];
          }
  frame.energy = energy;
  return frame;
}

inline std::vector<klay::md::LabelledFrame> soft_sphere_frames(int n_frames, uint64_t seed) {
  std::mt19937_64 generator(seed);
  std::vector<klay::md::LabelledFrame> frames;
  for (int f = 0; f < n_frames; ++f) {
    frames.push_back(soft_sphere_frame(generator, 4 + f % 3));
    frames.back().line = 1 + f;
  }
  return frames;
}

// The frames as ASE writes extended XYZ (energy on the comment line, a forces column).
inline void write_extended_xyz(const std::string& path, const std::vector<klay::md::LabelledFrame>& frames) {
  std::FILE* out = std::fopen(path.c_str(), "w");
  if (!out) return;
  for (const klay::md::LabelledFrame& frame : frames) {
    const klay::md::Structure& s = frame.structure;
    std::fprintf(out, "%lld\nLattice=\"%.17g 0 0 0 %.17g 0 0 0 %.17g\" Properties=species:S:1:pos:R:3:forces:R:3 "
                 "energy=%.17g pbc=\"T T T\"\n", static_cast<long long>(s.size()), kBox, kBox, kBox, *frame.energy);
    for (int64_t a = 0; a < s.size(); ++a)
      std::fprintf(out, "%s %.17g %.17g %.17g %.17g %.17g %.17g\n", s.elements[a].c_str(), s.positions[3 * a],
                   s.positions[3 * a + 1], s.positions[3 * a + 2], frame.forces[3 * a], frame.forces[3 * a + 1],
                   frame.forces[3 * a + 2]);
  }
  std::fclose(out);
}

}  // namespace soft_sphere
