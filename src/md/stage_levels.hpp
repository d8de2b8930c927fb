// The breadth-first walk behind every staged graph (md/staged.hpp states the definition): from
// S_0 (level 0), stage k takes every link of every atom first reached at stage k (the frontier
// S_k \ S_{k-1}); an atom a link reaches for the first time gets level k + 1; a link belongs to G_k
// from k = min(level of its two atoms) on, so it is collected at that stage. A link whose atoms
// share a level is collected from both sides, so collectors sort and drop repeats.
// StagedGraphBuilder walks LAMMPS-style neighbour lists with it, EdgesByAtom a graph's edges.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace klay::md {

inline constexpr int kUnreachedLevel = -1;

// A stage's new atoms are listed by a pass over every atom's level when they number at least
// 1/kScanShare of the atoms, by sorting them otherwise.
inline constexpr size_t kScanShare = 16;

// level: [atoms], kUnreachedLevel except the owned atoms (0), which `frontier` lists. Appends each
// stage's new atoms, sorted by index, to `atoms`. prepare_stage(frontier) runs before each stage's
// walk; for_each_link(a, visit) calls visit(b, link) for every link of atom a (to atom b);
// collect(k, link) receives the links of G_k not in G_{k-1}.
template <typename PrepareStage, typename ForEachLink, typename Collect>
void walk_stages(int depth, std::vector<int>& level, std::vector<int64_t>& frontier, std::vector<int64_t>& next,
                 std::vector<int64_t>& atoms, PrepareStage&& prepare_stage, ForEachLink&& for_each_link,
                 Collect&& collect) {
  for (int k = 0; k < depth; ++k) {
    prepare_stage(frontier);
    next.clear();
    for (int64_t a : frontier)
      for_each_link(a, [&](int64_t b, const auto& link) {
        if (level[b] == kUnreachedLevel) {
          level[b] = k + 1;
          next.push_back(b);
        }
        // A link to an atom of an earlier level was collected from that atom's side.
        if (level[b] >= k) collect(k, link);
      });
    // New atoms by caller index: the numbering does not depend on the order of the links. Where they
    // are a fair share of all the atoms, one pass over the levels lists them in order, cheaper than
    // a sort (20 of the 50 us of a 512-atom MD step's walk sorted its frontiers).
    if (next.size() * kScanShare >= level.size()) {
      next.clear();
      for (size_t b = 0; b < level.size(); ++b)
        if (level[b] == k + 1) next.push_back(static_cast<int64_t>(b));
    } else {
      std::sort(next.begin(), next.end());
    }
    atoms.insert(atoms.end(), next.begin(), next.end());
    frontier.swap(next);
  }
}

}  // namespace klay::md
