#include "md/neighbors.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "base/error.hpp"

namespace klay::md {

namespace {

using Vec3 = std::array<double, 3>;
using Mat3 = std::array<Vec3, 3>;

Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
double norm(const Vec3& a) { return std::sqrt(dot(a, a)); }
Vec3 normalized(const Vec3& a) {
  const double length = norm(a);
  return {a[0] / length, a[1] / length, a[2] / length};
}

// The search runs in fractional coordinates of a basis whose periodic rows are the lattice
// vectors; non-periodic rows are replaced by unit vectors orthogonal to the periodic ones, so a
// zero or arbitrary vector in an open direction never matters.
Mat3 search_basis(const Cell& cell) {
  std::vector<int> periodic, open;
  for (int d = 0; d < 3; ++d) (cell.periodic[d] ? periodic : open).push_back(d);
  Mat3 basis{};
  for (int d : periodic) basis[d] = cell.vectors[d];

  const double tiny = 1e-10;
  auto degenerate = [&]() {
    std::ostringstream msg;
    msg << "the periodic lattice vectors are degenerate (zero or linearly dependent):";
    for (int d : periodic)
      msg << " [" << cell.vectors[d][0] << ", " << cell.vectors[d][1] << ", " << cell.vectors[d][2]
          << "]";
    throw Error(msg.str());
  };
  if (periodic.size() == 3) {
    const double volume = std::fabs(dot(basis[0], cross(basis[1], basis[2])));
    if (!(volume > tiny * norm(basis[0]) * norm(basis[1]) * norm(basis[2]))) degenerate();
  } else if (periodic.size() == 2) {
    const Vec3 normal = cross(basis[periodic[0]], basis[periodic[1]]);
    if (!(norm(normal) > tiny * norm(basis[periodic[0]]) * norm(basis[periodic[1]]))) degenerate();
    basis[open[0]] = normalized(normal);
  } else if (periodic.size() == 1) {
    const Vec3& a = basis[periodic[0]];
    if (!(norm(a) > 0)) degenerate();
    // The Cartesian axis least aligned with a gives a well-conditioned orthogonal pair.
    int axis = 0;
    for (int k = 1; k < 3; ++k)
      if (std::fabs(a[k]) < std::fabs(a[axis])) axis = k;
    Vec3 unit{};
    unit[axis] = 1.0;
    basis[open[0]] = normalized(cross(a, unit));
    basis[open[1]] = normalized(cross(a, basis[open[0]]));
  } else {
    for (int d = 0; d < 3; ++d) basis[d][d] = 1.0;
  }
  return basis;
}

Mat3 inverse(const Mat3& m) {
  const double det = dot(m[0], cross(m[1], m[2]));
  // Columns of the inverse are the cross products of rows: x = f·M  <=>  f = x·M⁻¹.
  const Vec3 c0 = cross(m[1], m[2]), c1 = cross(m[2], m[0]), c2 = cross(m[0], m[1]);
  Mat3 inv{};
  for (int k = 0; k < 3; ++k) {
    inv[k][0] = c0[k] / det;
    inv[k][1] = c1[k] / det;
    inv[k][2] = c2[k] / det;
  }
  return inv;
}

int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

}  // namespace

Vec3 Cell::translation(const std::array<int, 3>& offset) const {
  Vec3 t{};
  for (int k = 0; k < 3; ++k)
    t[k] = offset[0] * vectors[0][k] + offset[1] * vectors[1][k] + offset[2] * vectors[2][k];
  return t;
}

std::vector<NeighborPair> find_neighbors(const double* positions, int64_t n, const Cell& cell,
                                         double cutoff) {
  if (!(cutoff > 0) || !std::isfinite(cutoff))
    throw Error("neighbour search: the cutoff must be a positive number, got " +
                std::to_string(cutoff));
  std::vector<NeighborPair> pairs;
  if (n == 0) return pairs;
  for (int64_t i = 0; i < 3 * n; ++i)
    if (!std::isfinite(positions[i]))
      throw Error("neighbour search: atom " + std::to_string(i / 3) +
                  " has a non-finite coordinate");

  const Mat3 basis = search_basis(cell);
  const Mat3 to_fractional = inverse(basis);
  const double volume = std::fabs(dot(basis[0], cross(basis[1], basis[2])));
  // Distance between neighbouring lattice planes f_d = const: a displacement shorter than r
  // changes f_d by at most r / plane_spacing[d].
  Vec3 plane_spacing{};
  for (int d = 0; d < 3; ++d)
    plane_spacing[d] = volume / norm(cross(basis[(d + 1) % 3], basis[(d + 2) % 3]));

  // Periodic directions: wrap into [0, 1) and remember the integer part (the atom's own image).
  std::vector<Vec3> fractional(n);
  std::vector<std::array<int64_t, 3>> own_image(n, {0, 0, 0});
  Vec3 low{}, high{};
  for (int64_t i = 0; i < n; ++i) {
    const double* x = positions + 3 * i;
    for (int d = 0; d < 3; ++d) {
      double f = x[0] * to_fractional[0][d] + x[1] * to_fractional[1][d] + x[2] * to_fractional[2][d];
      if (cell.periodic[d]) {
        const double whole = std::floor(f);
        own_image[i][d] = static_cast<int64_t>(whole);
        f -= whole;
      }
      fractional[i][d] = f;
      if (i == 0 || f < low[d]) low[d] = f;
      if (i == 0 || f > high[d]) high[d] = f;
    }
  }
  for (int d = 0; d < 3; ++d)
    if (cell.periodic[d]) low[d] = 0.0, high[d] = 1.0;

  // Bins at least r wide where possible; never many more bins than atoms (a sparse open system
  // would otherwise allocate a huge empty grid).
  std::array<int64_t, 3> bins{};
  Vec3 bin_width{};  // in fractional units
  for (int d = 0; d < 3; ++d) {
    const double extent = (high[d] - low[d]) * plane_spacing[d];
    bins[d] = std::max<int64_t>(1, static_cast<int64_t>(std::min(extent / cutoff, 1e6)));
  }
  const int64_t max_bins = 4 * n + 64;
  while (bins[0] * bins[1] * bins[2] > max_bins) {
    const int d = static_cast<int>(std::max_element(bins.begin(), bins.end()) - bins.begin());
    bins[d] = std::max<int64_t>(1, bins[d] / 2);
  }
  std::array<int64_t, 3> reach{};  // how many bins away a neighbour can be
  for (int d = 0; d < 3; ++d) {
    const double range = high[d] - low[d];
    bin_width[d] = range > 0 ? range / bins[d] : 1.0;
    const double bins_per_cutoff = cutoff / (bin_width[d] * plane_spacing[d]);
    // floor(x(1+ε)) + 1 ≥ ceil(x) and covers rounding of f when x is (nearly) an integer.
    reach[d] = static_cast<int64_t>(std::floor(std::min(bins_per_cutoff * (1 + 1e-12), 1e9))) + 1;
    if (!cell.periodic[d]) reach[d] = std::min(reach[d], bins[d] - 1);
  }

  auto bin_of = [&](int64_t i) {
    std::array<int64_t, 3> b{};
    for (int d = 0; d < 3; ++d) {
      const int64_t k = static_cast<int64_t>(std::floor((fractional[i][d] - low[d]) / bin_width[d]));
      b[d] = std::clamp<int64_t>(k, 0, bins[d] - 1);
    }
    return b;
  };
  auto flat = [&](const std::array<int64_t, 3>& b) { return (b[0] * bins[1] + b[1]) * bins[2] + b[2]; };

  // Counting sort of atoms into bins (CSR).
  std::vector<std::array<int64_t, 3>> atom_bin(n);
  std::vector<int64_t> bin_start(bins[0] * bins[1] * bins[2] + 1, 0);
  for (int64_t i = 0; i < n; ++i) {
    atom_bin[i] = bin_of(i);
    ++bin_start[flat(atom_bin[i]) + 1];
  }
  for (size_t b = 1; b < bin_start.size(); ++b) bin_start[b] += bin_start[b - 1];
  std::vector<int64_t> bin_atoms(n);
  {
    std::vector<int64_t> fill(bin_start.begin(), bin_start.end() - 1);
    for (int64_t i = 0; i < n; ++i) bin_atoms[fill[flat(atom_bin[i])]++] = i;
  }

  for (int64_t i = 0; i < n; ++i) {
    const double* xi = positions + 3 * i;
    std::array<int64_t, 3> target{}, image{};
    for (int64_t d0 = -reach[0]; d0 <= reach[0]; ++d0)
      for (int64_t d1 = -reach[1]; d1 <= reach[1]; ++d1)
        for (int64_t d2 = -reach[2]; d2 <= reach[2]; ++d2) {
          const std::array<int64_t, 3> step{d0, d1, d2};
          bool inside = true;
          for (int d = 0; d < 3; ++d) {
            const int64_t g = atom_bin[i][d] + step[d];
            image[d] = cell.periodic[d] ? floor_div(g, bins[d]) : 0;
            target[d] = g - image[d] * bins[d];
            if (target[d] < 0 || target[d] >= bins[d]) inside = false;
          }
          if (!inside) continue;
          const int64_t b = flat(target);
          for (int64_t k = bin_start[b]; k < bin_start[b + 1]; ++k) {
            const int64_t j = bin_atoms[k];
            // Offset between the original (unwrapped) positions, see own_image.
            std::array<int, 3> offset{};
            for (int d = 0; d < 3; ++d)
              offset[d] = static_cast<int>(image[d] - own_image[j][d] + own_image[i][d]);
            if (i == j && offset[0] == 0 && offset[1] == 0 && offset[2] == 0) continue;
            const Vec3 shift = cell.translation(offset);
            const double* xj = positions + 3 * j;
            if (within_cutoff(xj[0] + shift[0] - xi[0], xj[1] + shift[1] - xi[1],
                              xj[2] + shift[2] - xi[2], cutoff))
              pairs.push_back({i, j, offset});
          }
        }
  }
  std::sort(pairs.begin(), pairs.end(), [](const NeighborPair& a, const NeighborPair& b) {
    if (a.i != b.i) return a.i < b.i;
    if (a.j != b.j) return a.j < b.j;
    return a.offset < b.offset;
  });
  return pairs;
}

}  // namespace klay::md
