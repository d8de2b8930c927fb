// Staged graphs (docs/design.md#staged-graphs, the reference data's convention):
//   S_0 = owned atoms; for k = 0..D-1: G_k = {(a,b), (b,a) : a ∈ S_k, b a neighbour of a within
//   r_cut, b ≠ a}; S_{k+1} = S_k ∪ {those b}.
// All stages share one edge array ordered so that G_k is its first stage_edges[k] pairs
// (G_0 ⊆ G_1 ⊆ …): edge (x, y) belongs to G_k exactly when min(level(x), level(y)) ≤ k, where
// level(a) is the first k with a ∈ S_k, so the array is the edges grouped by that minimum level,
// each group sorted by (x, y). G_0 is then in the conformance order; a larger G_k holds the same
// set as the conformance edge_index{k}, in a different order.
// Also: the padding (ghost) atoms of a periodic cell, in the conformance order. Torch-free.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "md/neighbors.hpp"

namespace klay::md {

struct StagedGraph {
  std::vector<int64_t> edge_pairs;   // [n_edges][2]: the largest graph G_{D-1}
  std::vector<int64_t> stage_edges;  // [D]: G_k = the first stage_edges[k] pairs
  // Compacted graphs only: the model's atoms are S_D (the atoms any edge touches plus the owned
  // ones): the owned atoms in the order given, then each stage's new atoms by caller index.
  // Edges use model indices.
  std::vector<int64_t> atoms;        // [n_model_atoms]: caller index of model atom m
  std::vector<int64_t> model_index;  // [caller atoms]: model index, -1 if not in S_D
  int64_t n_edges() const { return static_cast<int64_t>(edge_pairs.size() / 2); }
};

// Appends the neighbours of `atom` (any order, duplicates allowed) to `out`; only called for atoms
// of S_{D-1}, so neighbour lists of atoms further out may be incomplete (LAMMPS's outer ghosts).
// Called from several OpenMP threads at once (each with its own `out`), for different atoms.
using NeighborsOf = std::function<void(int64_t atom, std::vector<int64_t>& out)>;

// Builds staged graphs and keeps its scratch storage between calls (one per MD step).
class StagedGraphBuilder {
 public:
  // S_0 = `owned` ([n_owned] caller indices), or atoms [0, n_owned) when owned is NULL. With
  // `compact` the result is in model indices (see StagedGraph), otherwise in caller indices and
  // owned must be NULL. Throws klay::Error for a neighbour index outside [0, n_atoms), a self
  // pair, a repeated owned atom or depth < 1.
  void build(const int64_t* owned, int64_t n_owned, int64_t n_atoms, int depth,
             const NeighborsOf& neighbors_of, bool compact, StagedGraph& out);

 private:
  // One stage's links and what sorting them needs (each stage's on a thread of its own). Each on
  // cache lines of its own, as are the threads' neighbour lists below: a vector's size lives in
  // its header, and two threads growing vectors whose headers share a line take turns owning it
  // (the neighbour search ran 1.2x faster on 2 threads than on 1 before they were apart, 1.8x after).
  struct alignas(64) Stage {
    std::vector<std::pair<int64_t, int64_t>> links;  // as the walk collected them, one pair per link
    std::vector<int64_t> bucket_start, bucket_fill, seconds;
    std::vector<int64_t> sorted;  // the pairs in ascending order, each once, flattened
  };
  // stage.sorted, the pairs (a, b) and (b, a) of stage.links: a counting sort by first index (all
  // below n_atoms), then each first index's few second indices sorted.
  static void sort_unique(int64_t n_atoms, Stage& stage);

  // The neighbours of a stage's frontier atoms, found on every thread before the (serial) walk:
  // thread t's in found_[t].atoms, atom a's at found_[t].atoms[range_[a].begin, range_[a].end).
  struct alignas(64) ThreadFound {
    std::vector<int64_t> atoms;
  };
  struct Found {
    int thread;
    int64_t begin, end;
  };
  void find_neighbors(const std::vector<int64_t>& frontier, const NeighborsOf& neighbors_of);

  std::vector<int> level_;
  std::vector<ThreadFound> found_;
  std::vector<Found> range_;
  std::vector<int64_t> frontier_, next_frontier_;
  std::vector<Stage> stages_;
};

// Staged graphs of explicit atoms (no periodicity): neighbours are all atoms within cutoff.
StagedGraph staged_graph_of_atoms(const double* coords, int64_t n_owned, int64_t n_atoms,
                                  double cutoff, int depth);

// A periodic cell made explicit: the unit-cell atoms (in order) followed by their periodic images
// pos[j] + S·cell (S ≠ 0) that lie within `padding_cutoff` of some unit-cell atom, ordered by
// (S0, S1, S2, j). An open cell gets no images.
struct PaddedAtoms {
  int64_t n_owned = 0;
  std::vector<double> coords;               // [n_atoms][3]
  std::vector<int64_t> image_of;            // [n_atoms]: the unit-cell atom each atom is a copy of
  std::vector<std::array<int, 3>> offset;   // [n_atoms]: S (zero for the unit-cell atoms)
  int64_t n_atoms() const { return static_cast<int64_t>(image_of.size()); }
};

PaddedAtoms pad_with_images(const double* positions, int64_t n, const Cell& cell,
                            double padding_cutoff);

// Margin added to D·r_cut when choosing padding atoms (the conformance cases use 0.5 Å): atoms
// just outside D·r_cut cannot reach the owned atoms, the margin only makes the choice robust.
constexpr double kPaddingMargin = 0.5;

}  // namespace klay::md
