// Padding atoms and staged graphs against the inputs the Python reference generator recorded
// (shared/conformance/staged_*), and the prefix property G_0 ⊆ G_1 ⊆ … of the edge array.
#include <gtest/gtest.h>

#include <omp.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "md/staged.hpp"
#include "reference_cell.hpp"
#include "base/error.hpp"

using klay::md::Cell;
using klay::md::PaddedAtoms;
using klay::md::StagedGraph;

namespace {

using EdgeSet = std::set<std::pair<int64_t, int64_t>>;

EdgeSet prefix_set(const StagedGraph& g, int64_t count) {
  EdgeSet out;
  for (int64_t e = 0; e < count; ++e) out.emplace(g.edge_pairs[2 * e], g.edge_pairs[2 * e + 1]);
  return out;
}

}  // namespace

class ReferenceStaged : public ::testing::TestWithParam<const char*> {};

TEST_P(ReferenceStaged, RebuildsRecordedInputs) {
  using namespace klay_test;
  const Value ref = read_reference(GetParam());
  const Value& s = member(ref, "structure");
  const Cell cell = reference_cell(s, true);
  const auto unit = numbers(member(s, "unit_cell_positions"));
  const int64_t n_unit = static_cast<int64_t>(unit.size() / 3);
  const double r_cut = member(s, "r_cut").as_double();
  const int depth = static_cast<int>(member(s, "n_stages").integer);
  ASSERT_EQ(member(s, "padding_margin").as_double(), klay::md::kPaddingMargin);

  const PaddedAtoms padded =
      klay::md::pad_with_images(unit.data(), n_unit, cell, depth * r_cut + klay::md::kPaddingMargin);
  const Value& inputs = member(ref, "inputs");

  // Atoms: same count, same order, bit-identical coordinates, same image bookkeeping.
  const auto coords = numbers(member(inputs, "coords"));
  ASSERT_EQ(padded.coords.size(), coords.size());
  for (size_t k = 0; k < coords.size(); ++k) ASSERT_EQ(padded.coords[k], coords[k]) << "coordinate " << k;
  EXPECT_EQ(padded.image_of, integers(member(ref, "image_of")));
  const auto offsets = integers(member(ref, "image_offset_S"));
  for (int64_t a = 0; a < padded.n_atoms(); ++a)
    for (int k = 0; k < 3; ++k) ASSERT_EQ(padded.offset[a][k], offsets[3 * a + k]) << "atom " << a;

  const auto species_unit = integers(member(s, "unit_cell_species_index"));
  const auto species = integers(member(inputs, "species"));
  const auto contributions = integers(member(inputs, "contributions"));
  for (int64_t a = 0; a < padded.n_atoms(); ++a) {
    EXPECT_EQ(species[a], species_unit[padded.image_of[a]]) << "atom " << a;
    EXPECT_EQ(contributions[a], a < padded.n_owned ? 0 : 1) << "atom " << a;
  }

  const StagedGraph graph = klay::md::staged_graph_of_atoms(padded.coords.data(), padded.n_owned,
                                                             padded.n_atoms(), r_cut, depth);
  ASSERT_EQ(graph.stage_edges.size(), static_cast<size_t>(depth));
  EXPECT_EQ(graph.stage_edges.back(), graph.n_edges());
  for (int k = 0; k < depth; ++k) {
    const auto recorded = integers(member(inputs, "edge_index" + std::to_string(k)));
    const size_t n_recorded = recorded.size() / 2;
    EdgeSet expected;
    for (size_t e = 0; e < n_recorded; ++e) expected.emplace(recorded[e], recorded[n_recorded + e]);
    ASSERT_EQ(expected.size(), n_recorded) << "the recorded graph has duplicates";
    // G_k is exactly the prefix of length stage_edges[k] (a set with no duplicate pairs).
    ASSERT_EQ(graph.stage_edges[k], static_cast<int64_t>(n_recorded)) << "stage " << k;
    EXPECT_EQ(prefix_set(graph, graph.stage_edges[k]), expected) << "stage " << k;
    if (k == 0) {
      // G_0 comes first and sorted: the recorded order exactly.
      for (size_t e = 0; e < n_recorded; ++e) {
        EXPECT_EQ(graph.edge_pairs[2 * e], recorded[e]);
        EXPECT_EQ(graph.edge_pairs[2 * e + 1], recorded[n_recorded + e]);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Conformance, ReferenceStaged,
                         ::testing::Values("staged_nequip_staged2_si8", "staged_nequip_staged2_box20",
                                           "staged_nequip_staged3_tric12", "staged_mace_staged2_si8"),
                         klay_test::case_folder_name);

TEST(StagedGraph, ChainGrowsOneAtomPerStage) {
  // Atoms on a line 1 Å apart, cutoff 1.5: atom 0 owned, stage k reaches atom k+1.
  const std::vector<double> coords{0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0, 0};
  const StagedGraph g = klay::md::staged_graph_of_atoms(coords.data(), 1, 5, 1.5, 3);
  EXPECT_EQ(g.stage_edges, (std::vector<int64_t>{2, 4, 6}));
  EXPECT_EQ(g.edge_pairs, (std::vector<int64_t>{0, 1, 1, 0,            // G_0
                                                1, 2, 2, 1,            // + stage 1
                                                2, 3, 3, 2}));         // + stage 2 (4 never a centre)
}

// A stage's new atoms come in index order whatever order the links meet them: listed by a pass
// over the levels when they are many of the atoms (5 atoms), sorted when few (41 atoms).
TEST(StagedGraph, NewAtomsOfAStageAreInIndexOrder) {
  for (int64_t n : {5, 41}) {
    SCOPED_TRACE(std::to_string(n) + " atoms");
    const int64_t middle = n / 2;
    const auto higher_first = [&](int64_t a, std::vector<int64_t>& out) {  // a chain, listed backwards
      if (a + 1 < n) out.push_back(a + 1);
      if (a > 0) out.push_back(a - 1);
    };
    klay::md::StagedGraphBuilder builder;
    StagedGraph g;
    builder.build(&middle, 1, n, 2, higher_first, true, g);
    EXPECT_EQ(g.atoms, (std::vector<int64_t>{middle, middle - 1, middle + 1, middle - 2, middle + 2}));
    // In model indices: the owned atom 0, then 1 and 2 (stage 0), 3 and 4 (stage 1).
    EXPECT_EQ(g.edge_pairs, (std::vector<int64_t>{0, 1, 0, 2, 1, 0, 2, 0,  // G_0
                                                  1, 3, 2, 4, 3, 1, 4, 2}));  // + stage 1
    EXPECT_EQ(g.stage_edges, (std::vector<int64_t>{4, 8}));
  }
}

TEST(StagedGraph, IsolatedOwnedAtomAndNoOwnedAtoms) {
  const std::vector<double> coords{0, 0, 0, 10, 0, 0, 11, 0, 0};
  StagedGraph g = klay::md::staged_graph_of_atoms(coords.data(), 1, 3, 2.0, 2);
  EXPECT_EQ(g.stage_edges, (std::vector<int64_t>{0, 0}));
  g = klay::md::staged_graph_of_atoms(coords.data(), 0, 3, 2.0, 2);
  EXPECT_EQ(g.n_edges(), 0);
}

TEST(StagedGraph, RejectsBadNeighbourIndices) {
  klay::md::StagedGraphBuilder builder;
  StagedGraph g;
  auto out_of_range = [](int64_t, std::vector<int64_t>& out) { out.push_back(7); };
  EXPECT_THROW(builder.build(nullptr, 1, 2, 1, out_of_range, false, g), klay::Error);
  auto self = [](int64_t a, std::vector<int64_t>& out) { out.push_back(a); };
  EXPECT_THROW(builder.build(nullptr, 1, 2, 1, self, false, g), klay::Error);
  EXPECT_THROW(builder.build(nullptr, 1, 2, 0, self, false, g), klay::Error);
}

TEST(StagedGraph, CompactionKeepsReachedAtomsInStageOrder) {
  // Caller atoms on a line: x = 0..6 at indices {5, 2, 6, 0, 3, 1, 4}; owned = caller atoms 0 and 3
  // (x = 3 and 4); cutoff 1.5, two stages: S_1 adds x = 2, 5; S_2 adds x = 1, 6; x = 0 is dropped.
  const std::vector<double> x_of{3, 5, 1, 4, 6, 0, 2};  // by caller index
  const auto neighbors_of = [&](int64_t a, std::vector<int64_t>& out) {
    for (int64_t b = 0; b < 7; ++b)
      if (b != a && std::abs(x_of[b] - x_of[a]) < 1.5) out.push_back(b);
  };
  const std::vector<int64_t> owned{3, 0};
  klay::md::StagedGraphBuilder builder;
  StagedGraph g;
  builder.build(owned.data(), 2, 7, 2, neighbors_of, /*compact=*/true, g);
  // Model atoms: owned in the given order, then stage 1 (x=5 -> caller 1, x=2 -> caller 6) by
  // caller index, then stage 2 (x=6 -> 4, x=1 -> 2) by caller index.
  EXPECT_EQ(g.atoms, (std::vector<int64_t>{3, 0, 1, 6, 2, 4}));
  EXPECT_EQ(g.model_index, (std::vector<int64_t>{1, 2, 4, 0, 5, -1, 3}));
  // G_0: edges touching x = 3, 4 (model 1, 0): 4-3, 3-2, 4-5.
  EXPECT_EQ(g.stage_edges, (std::vector<int64_t>{6, 10}));
  EXPECT_EQ(std::vector<int64_t>(g.edge_pairs.begin(), g.edge_pairs.begin() + 12),
            (std::vector<int64_t>{0, 1, 0, 2, 1, 0, 1, 3, 2, 0, 3, 1}));
  // Stage 1 adds 5-6 (model 2-5) and 2-1 (model 3-4).
  EXPECT_EQ(std::vector<int64_t>(g.edge_pairs.begin() + 12, g.edge_pairs.end()),
            (std::vector<int64_t>{2, 5, 3, 4, 4, 3, 5, 2}));
}

namespace {

// Atoms on a cubic grid of `side`³ points 1 Å apart; neighbours within 1.5 Å (axes and face
// diagonals); owned: the atoms with x below side/2.
struct Grid {
  int64_t side;
  int64_t n_atoms() const { return side * side * side; }
  std::vector<int64_t> owned() const {
    std::vector<int64_t> out;
    for (int64_t a = 0; a < n_atoms(); ++a)
      if (a % side < side / 2) out.push_back(a);
    return out;
  }
  void neighbors(int64_t a, std::vector<int64_t>& out) const {
    const int64_t x = a % side, y = a / side % side, z = a / (side * side);
    for (int64_t dz = -1; dz <= 1; ++dz)
      for (int64_t dy = -1; dy <= 1; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t nx = x + dx, ny = y + dy, nz = z + dz;
          if ((dx || dy || dz) && dx * dx + dy * dy + dz * dz <= 2 && nx >= 0 && ny >= 0 && nz >= 0 &&
              nx < side && ny < side && nz < side)
            out.push_back(nx + side * (ny + side * nz));
        }
  }
};

}  // namespace

// The frontier's neighbours are found on every OpenMP thread: the same graph as on one thread.
TEST(StagedGraph, SameGraphOnAnyThreadCount) {
  const Grid grid{14};
  const std::vector<int64_t> owned = grid.owned();
  std::atomic<bool> other_thread{false};
  // In a team, the first thread waits (up to 10 s) for another to take a task: on a busy machine
  // the first could otherwise take every task before the second is scheduled, and the two-thread
  // build would run on one (it did, once, in a parallel ctest run).
  const auto neighbors_of = [&](int64_t a, std::vector<int64_t>& out) {
    if (omp_get_thread_num() > 0) {
      other_thread = true;
    } else if (omp_get_num_threads() > 1) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!other_thread && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    }
    grid.neighbors(a, out);
  };
  const int threads = omp_get_max_threads();
  StagedGraph graphs[2];
  for (int t : {1, 2}) {
    omp_set_num_threads(t);
    klay::md::StagedGraphBuilder builder;
    builder.build(owned.data(), static_cast<int64_t>(owned.size()), grid.n_atoms(), 2, neighbors_of, true,
                  graphs[t - 1]);
  }
  omp_set_num_threads(threads);
  EXPECT_TRUE(other_thread);  // the two-thread build did use a second thread
  EXPECT_EQ(graphs[0].edge_pairs, graphs[1].edge_pairs);
  EXPECT_EQ(graphs[0].stage_edges, graphs[1].stage_edges);
  EXPECT_EQ(graphs[0].atoms, graphs[1].atoms);
  EXPECT_GT(graphs[0].stage_edges[0], 0);
}

// A neighbour search that fails for several atoms reports the first in stage order, whichever
// thread met it.
TEST(StagedGraph, FirstFailingAtomIsReportedOnAnyThreadCount) {
  const Grid grid{14};
  const std::vector<int64_t> owned = grid.owned();
  const int64_t first_bad = owned[100], second_bad = owned[owned.size() - 5];
  const auto neighbors_of = [&](int64_t a, std::vector<int64_t>& out) {
    if (a == first_bad || a == second_bad) throw klay::Error("no list for atom " + std::to_string(a));
    grid.neighbors(a, out);
  };
  const int threads = omp_get_max_threads();
  for (int t : {1, 2}) {
    omp_set_num_threads(t);
    klay::md::StagedGraphBuilder builder;
    StagedGraph g;
    try {
      builder.build(owned.data(), static_cast<int64_t>(owned.size()), grid.n_atoms(), 2, neighbors_of, true, g);
      ADD_FAILURE() << "no error on " << t << " thread(s)";
    } catch (const klay::Error& e) {
      EXPECT_EQ(std::string(e.what()), "no list for atom " + std::to_string(first_bad)) << t << " thread(s)";
    }
  }
  omp_set_num_threads(threads);
}
