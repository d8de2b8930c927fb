#include "md/staged.hpp"

#include <algorithm>
#include <exception>
#include <string>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "base/error.hpp"
#include "md/stage_levels.hpp"

namespace klay::md {
namespace {

// start[a] = how many of the items have a key below a (start has n_keys + 1 entries): where key a's
// items begin once the items are grouped by key.
template <typename Items, typename Key>
void key_starts(const Items& items, int64_t n_keys, const Key& key, std::vector<int64_t>& start) {
  start.assign(static_cast<size_t>(n_keys) + 1, 0);
  for (const auto& item : items) ++start[key(item) + 1];
  for (int64_t a = 0; a < n_keys; ++a) start[a + 1] += start[a];
}

}  // namespace

void StagedGraphBuilder::build(const int64_t* owned, int64_t n_owned, int64_t n_atoms, int depth,
                               const NeighborsOf& neighbors_of, bool compact, StagedGraph& out) {
  if (depth < 1) throw Error("staged graph: the number of stages must be at least 1");
  if (n_owned < 0 || n_owned > n_atoms)
    throw Error("staged graph: " + std::to_string(n_owned) + " owned atoms out of " +
                std::to_string(n_atoms));
  if (owned && !compact) throw Error("staged graph: an owned-atom list needs compaction");
  level_.assign(static_cast<size_t>(n_atoms), kUnreachedLevel);
  stages_.resize(static_cast<size_t>(depth));
  for (Stage& stage : stages_) stage.links.clear();

  frontier_.clear();
  for (int64_t m = 0; m < n_owned; ++m) {
    const int64_t a = owned ? owned[m] : m;
    if (a < 0 || a >= n_atoms)
      throw Error("staged graph: owned atom " + std::to_string(a) + " outside [0, " + std::to_string(n_atoms) + ")");
    if (level_[a] != kUnreachedLevel) throw Error("staged graph: owned atom " + std::to_string(a) + " is listed twice");
    level_[a] = 0;
    frontier_.push_back(a);
  }
  out.atoms.assign(frontier_.begin(), frontier_.end());
  range_.resize(static_cast<size_t>(n_atoms));
  walk_stages(
      depth, level_, frontier_, next_frontier_, out.atoms,
      [&](const std::vector<int64_t>& frontier) { find_neighbors(frontier, neighbors_of); },
      [&](int64_t a, const auto& visit) {
        const Found& found = range_[a];
        const std::vector<int64_t>& neighbors = found_[found.thread].atoms;
        for (int64_t i = found.begin; i < found.end; ++i) {
          const int64_t b = neighbors[i];
          if (b < 0 || b >= n_atoms)
            throw Error("staged graph: atom " + std::to_string(a) + " has neighbour index " + std::to_string(b) +
                        " outside [0, " + std::to_string(n_atoms) + ")");
          if (b == a) throw Error("staged graph: atom " + std::to_string(a) + " is listed as its own neighbour");
          visit(b, std::pair<int64_t, int64_t>(a, b));
        }
      },
      [&](int k, const std::pair<int64_t, int64_t>& link) { stages_[k].links.push_back(link); });

  if (compact) {
    out.model_index.assign(static_cast<size_t>(n_atoms), -1);
    for (size_t m = 0; m < out.atoms.size(); ++m) out.model_index[out.atoms[m]] = static_cast<int64_t>(m);
  } else {
    out.atoms.clear();
    out.model_index.clear();
  }
  out.edge_pairs.clear();
  out.stage_edges.clear();
  // The stages are sorted independently, each on a thread of its own where there are threads.
  const auto sort_stage = [&](int k) {
    Stage& stage = stages_[k];
    if (compact)
      for (auto& [x, y] : stage.links) x = out.model_index[x], y = out.model_index[y];
    // Both ends in the same frontier: a link arrives from both; neighbour lists may repeat.
    sort_unique(n_atoms, stage);
  };
#ifdef _OPENMP
#pragma omp parallel for num_threads(std::max(1, std::min(depth, omp_get_max_threads()))) schedule(static, 1)
#endif
  for (int k = 0; k < depth; ++k) sort_stage(k);
  for (const Stage& stage : stages_) {
    out.edge_pairs.insert(out.edge_pairs.end(), stage.sorted.begin(), stage.sorted.end());
    out.stage_edges.push_back(out.n_edges());
  }
}

void StagedGraphBuilder::find_neighbors(const std::vector<int64_t>& frontier, const NeighborsOf& neighbors_of) {
  const int64_t n = static_cast<int64_t>(frontier.size());
  // Atoms handed to a thread at a time: the cost per atom varies (ghost atoms have shorter lists).
  constexpr int64_t kAtomsPerTask = 32;
  int threads = 1;
#ifdef _OPENMP
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), n / kAtomsPerTask)));
#endif
  found_.resize(std::max<size_t>(found_.size(), static_cast<size_t>(threads)));
  for (int t = 0; t < threads; ++t) found_[t].atoms.clear();
  // Each thread's first failure, with its position in the frontier.
  std::vector<std::pair<int64_t, std::exception_ptr>> failures(static_cast<size_t>(threads), {n, nullptr});
  const auto find = [&](int t, int64_t first, int64_t last) {
    std::vector<int64_t>& found = found_[t].atoms;
    for (int64_t m = first; m < last && m < failures[t].first; ++m) {
      const int64_t a = frontier[m], begin = static_cast<int64_t>(found.size());
      try {
        neighbors_of(a, found);
      } catch (...) {
        failures[t] = {m, std::current_exception()};
      }
      range_[a] = {t, begin, static_cast<int64_t>(found.size())};
    }
  };
  if (threads == 1) {
    find(0, 0, n);
  } else {
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t task = 0; task < (n + kAtomsPerTask - 1) / kAtomsPerTask; ++task)
      find(omp_get_thread_num(), task * kAtomsPerTask, std::min(n, (task + 1) * kAtomsPerTask));
#endif
  }
  // The failure of the first atom in frontier order, as a serial search would report it.
  const auto first = std::min_element(failures.begin(), failures.end(),
                                      [](const auto& x, const auto& y) { return x.first < y.first; });
  if (first->second) std::rethrow_exception(first->second);
}

void StagedGraphBuilder::sort_unique(int64_t n_atoms, Stage& stage) {
  // A counting sort of the pairs (a, b) and (b, a) of every link by their first atom.
  std::vector<int64_t>& start = stage.bucket_start;
  start.assign(static_cast<size_t>(n_atoms) + 1, 0);
  for (const auto& [a, b] : stage.links) ++start[a + 1], ++start[b + 1];
  for (int64_t a = 0; a < n_atoms; ++a) start[a + 1] += start[a];
  stage.bucket_fill.assign(start.begin(), start.end() - 1);
  stage.seconds.resize(2 * stage.links.size());
  for (const auto& [a, b] : stage.links) {
    stage.seconds[stage.bucket_fill[a]++] = b;
    stage.seconds[stage.bucket_fill[b]++] = a;
  }
  stage.sorted.clear();
  for (int64_t a = 0; a < n_atoms; ++a) {
    const auto begin = stage.seconds.begin() + start[a];
    const auto end = stage.seconds.begin() + start[a + 1];
    std::sort(begin, end);
    for (auto b = begin; b != end; ++b)
      if (b == begin || *b != *(b - 1)) {
        stage.sorted.push_back(a);
        stage.sorted.push_back(*b);
      }
  }
}

StagedGraph staged_graph_of_atoms(const double* coords, int64_t n_owned, int64_t n_atoms,
                                  double cutoff, int depth) {
  const std::vector<NeighborPair> pairs = find_neighbors(coords, n_atoms, Cell::open(), cutoff);
  std::vector<int64_t> first;  // pairs come grouped by i
  key_starts(pairs, n_atoms, [](const NeighborPair& p) { return p.i; }, first);
  StagedGraph graph;
  StagedGraphBuilder builder;
  builder.build(nullptr, n_owned, n_atoms, depth,
                [&](int64_t atom, std::vector<int64_t>& out) {
                  for (int64_t k = first[atom]; k < first[atom + 1]; ++k) out.push_back(pairs[k].j);
                },
                /*compact=*/false, graph);
  return graph;
}

PaddedAtoms pad_with_images(const double* positions, int64_t n, const Cell& cell,
                            double padding_cutoff) {
  PaddedAtoms padded;
  padded.n_owned = n;
  padded.coords.assign(positions, positions + 3 * n);
  for (int64_t i = 0; i < n; ++i) {
    padded.image_of.push_back(i);
    padded.offset.push_back({0, 0, 0});
  }
  if (!cell.any_periodic() || n == 0) return padded;

  // Every image within the padding cutoff of some unit-cell atom is a neighbour pair (i, j, S≠0).
  std::vector<std::pair<std::array<int, 3>, int64_t>> images;
  for (const NeighborPair& p : find_neighbors(positions, n, cell, padding_cutoff))
    if (p.offset != std::array<int, 3>{0, 0, 0}) images.emplace_back(p.offset, p.j);
  std::sort(images.begin(), images.end());
  images.erase(std::unique(images.begin(), images.end()), images.end());

  for (const auto& [offset, j] : images) {
    const std::array<double, 3> shift = cell.translation(offset);
    for (int k = 0; k < 3; ++k) padded.coords.push_back(positions[3 * j + k] + shift[k]);
    padded.image_of.push_back(j);
    padded.offset.push_back(offset);
  }
  return padded;
}

}  // namespace klay::md
