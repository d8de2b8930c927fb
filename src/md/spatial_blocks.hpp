// Spatial blocks (docs/design.md#staged-graphs, issue #14): the owned atoms split into compact
// groups, each evaluated on its own as if it were an MPI rank's domain. A block's staged graph is
// cut out of the caller's largest graph G_{D-1}, which holds every edge of every atom of the
// caller's S_{D-1} and therefore of the block's S_{D-1} too. The block keeps the caller's edge
// indices, so edges the caller repeats with different shifts stay apart and edge gradients map
// back exactly. Torch-free.
#pragma once
#include <cstdint>
#include <vector>

namespace klay::md {

// Owned atoms [0, n_owned) split by recursive bisection of their bounding box (the longest extent
// cut at the quantile that keeps the parts' sizes proportional to their shares) into `parts`
// blocks of sizes differing by at most one. Each block lists its caller indices in ascending order.
std::vector<std::vector<int64_t>> bisect_owned_atoms(const double* coords, int64_t n_owned, int64_t parts);

// How many blocks an evaluation uses (blocks run one per thread, single-threaded inside): enough
// that none exceeds `max_owned` atoms, rounded up to a multiple of `threads` so every thread gets
// the same share; never more than the owned atoms. One block is the whole evaluation, its kernels
// using every thread; `max_owned` 0 (no cap) always gives that. Below the cap the whole beats one
// block per thread since the kernels' products scale with the threads (bench/README.md#row-products):
// blocks repeat their halos (2 blocks of 512 atoms cost 1.3x the whole on one thread).
int64_t spatial_block_count(int64_t n_owned, int64_t threads, int64_t max_owned);

// One block's atoms and staged graph in the convention of StagedGraph (compacted): model atom m
// is caller atom atoms[m], the block's owned atoms first (in the order given), then each stage's
// new atoms by caller index; edges are caller edges, grouped by stage so that G_k is the first
// stage_edges[k] of them, each group in caller order.
struct SpatialBlock {
  int64_t n_owned = 0;
  std::vector<int64_t> atoms;        // [n_block_atoms]: caller index
  std::vector<int64_t> edges;        // [n_block_edges]: caller edge index
  std::vector<int64_t> edge_pairs;   // [n_block_edges][2]: block atom indices
  std::vector<int64_t> stage_edges;  // [depth]
};

// The caller's largest graph indexed by atom, built once per evaluation and shared by its blocks.
class EdgesByAtom {
 public:
  // edge_pairs: [n_edges][2] caller atom indices in [0, n_atoms) (checked by the caller).
  EdgesByAtom(const int64_t* edge_pairs, int64_t n_edges, int64_t n_atoms);
  // The block whose S_0 is `owned` (caller indices, none repeated), `depth` stages deep.
  SpatialBlock block(const std::vector<int64_t>& owned, int depth) const;

 private:
  const int64_t* edge_pairs_;
  int64_t n_atoms_;
  std::vector<int64_t> first_;     // [n_atoms + 1]: atom a's incident edges are incident_[first_[a], first_[a+1])
  std::vector<int64_t> incident_;  // edge indices, each edge listed under both of its atoms
};

}  // namespace klay::md
