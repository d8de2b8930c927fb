#include "md/spatial_blocks.hpp"

#include <algorithm>
#include <array>
#include <limits>

#include "md/stage_levels.hpp"

namespace klay::md {

namespace {

void bisect(const double* coords, std::vector<int64_t>::iterator begin, std::vector<int64_t>::iterator end,
            int64_t parts, std::vector<std::vector<int64_t>>& blocks) {
  if (parts == 1) {
    blocks.emplace_back(begin, end);
    std::sort(blocks.back().begin(), blocks.back().end());
    return;
  }
  std::array<double, 3> low, high;
  low.fill(std::numeric_limits<double>::infinity());
  high.fill(-std::numeric_limits<double>::infinity());
  for (auto it = begin; it != end; ++it)
    for (int k = 0; k < 3; ++k) {
      low[k] = std::min(low[k], coords[3 * *it + k]);
      high[k] = std::max(high[k], coords[3 * *it + k]);
    }
  int axis = 0;
  for (int k = 1; k < 3; ++k)
    if (high[k] - low[k] > high[axis] - low[axis]) axis = k;
  const int64_t left_parts = parts / 2;
  const auto cut = begin + (end - begin) * left_parts / parts;
  // Ties broken by index: the split does not depend on the order atoms arrive in.
  std::nth_element(begin, cut, end, [&](int64_t a, int64_t b) {
    const double xa = coords[3 * a + axis], xb = coords[3 * b + axis];
    return xa < xb || (xa == xb && a < b);
  });
  bisect(coords, begin, cut, left_parts, blocks);
  bisect(coords, cut, end, parts - left_parts, blocks);
}

}  // namespace

std::vector<std::vector<int64_t>> bisect_owned_atoms(const double* coords, int64_t n_owned, int64_t parts) {
  std::vector<int64_t> order(static_cast<size_t>(n_owned));
  for (int64_t a = 0; a < n_owned; ++a) order[a] = a;
  std::vector<std::vector<int64_t>> blocks;
  bisect(coords, order.begin(), order.end(), std::max<int64_t>(1, std::min(parts, n_owned)), blocks);
  return blocks;
}

int64_t spatial_block_count(int64_t n_owned, int64_t threads, int64_t max_owned) {
  threads = std::max<int64_t>(1, threads);
  if (max_owned <= 0) return 1;
  int64_t needed = (n_owned + max_owned - 1) / max_owned;
  if (needed <= 1) return 1;
  const int64_t count = (needed + threads - 1) / threads * threads;
  return std::max<int64_t>(1, std::min(count, n_owned));
}

EdgesByAtom::EdgesByAtom(const int64_t* edge_pairs, int64_t n_edges, int64_t n_atoms)
    : edge_pairs_(edge_pairs), n_atoms_(n_atoms), first_(static_cast<size_t>(n_atoms) + 1, 0),
      incident_(static_cast<size_t>(2 * n_edges)) {
  for (int64_t e = 0; e < 2 * n_edges; ++e) ++first_[edge_pairs[e] + 1];
  for (int64_t a = 0; a < n_atoms; ++a) first_[a + 1] += first_[a];
  std::vector<int64_t> next(first_.begin(), first_.end() - 1);
  for (int64_t e = 0; e < 2 * n_edges; ++e) incident_[next[edge_pairs[e]]++] = e / 2;
}

SpatialBlock EdgesByAtom::block(const std::vector<int64_t>& owned, int depth) const {
  std::vector<int> level(static_cast<size_t>(n_atoms_), kUnreachedLevel);
  std::vector<std::vector<int64_t>> by_level(static_cast<size_t>(depth));
  SpatialBlock block;
  block.n_owned = static_cast<int64_t>(owned.size());
  block.atoms = owned;
  for (int64_t a : owned) level[a] = 0;
  std::vector<int64_t> frontier = owned, next_frontier;
  walk_stages(
      depth, level, frontier, next_frontier, block.atoms, [](const std::vector<int64_t>&) {},
      [&](int64_t a, const auto& visit) {
        for (int64_t i = first_[a]; i < first_[a + 1]; ++i) {
          const int64_t e = incident_[i];
          visit(edge_pairs_[2 * e] == a ? edge_pairs_[2 * e + 1] : edge_pairs_[2 * e], e);
        }
      },
      [&](int k, int64_t e) { by_level[k].push_back(e); });
  std::vector<int64_t>& index = next_frontier;  // caller atom -> block atom, for the block's atoms
  index.assign(static_cast<size_t>(n_atoms_), -1);
  for (size_t m = 0; m < block.atoms.size(); ++m) index[block.atoms[m]] = static_cast<int64_t>(m);
  // Each stage's edges in caller order, each once (an edge met from both its atoms is listed
  // twice): a bitmap over their range and one pass over its words, where sorting each stage's
  // list took 6 % of a 32,768-atom MD step in float32.
  std::vector<uint64_t> bits;
  for (const std::vector<int64_t>& edges : by_level) {
    if (!edges.empty()) {
      const auto [lowest, highest] = std::minmax_element(edges.begin(), edges.end());
      const int64_t first = *lowest, words = (*highest - first) / 64 + 1;
      bits.assign(static_cast<size_t>(words), 0);
      for (int64_t e : edges) bits[(e - first) / 64] |= uint64_t{1} << ((e - first) % 64);
      for (int64_t w = 0; w < words; ++w)
        for (uint64_t word = bits[w]; word != 0; word &= word - 1) {
          const int64_t e = first + 64 * w + __builtin_ctzll(word);
          block.edges.push_back(e);
          block.edge_pairs.push_back(index[edge_pairs_[2 * e]]);
          block.edge_pairs.push_back(index[edge_pairs_[2 * e + 1]]);
        }
    }
    block.stage_edges.push_back(static_cast<int64_t>(block.edges.size()));
  }
  return block;
}

}  // namespace klay::md
