// The staged graphs exactly as pair_style klay asks for them (klay_build_staged_graph with LAMMPS
// neighbor lists: ilist order, full lists within cutoff + skin in arbitrary order, special-bond
// bits above NEIGHMASK, the contiguous x array) against shared/conformance/staged_*: the same edge
// sets per stage, each stage a prefix of the next, the same reached atoms.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "reference.hpp"
#include "klay.h"

namespace {

using Edge = std::pair<int64_t, int64_t>;

constexpr int kSpecialBits = 1 << 30;  // where LAMMPS flags special pairs (above NEIGHMASK)
constexpr int kNeighborMask = kSpecialBits - 1;

// LAMMPS-like full neighbor lists of every atom: all pairs within `radius` (cutoff + skin),
// shuffled, every other entry carrying special-bond bits.
struct LammpsLists {
  std::vector<double> x;
  std::vector<std::vector<int>> lists;
  std::vector<int> numneigh;
  std::vector<const int *> firstneigh;
  std::vector<int> ilist;

  LammpsLists(std::vector<double> coords, std::vector<int> owned, double radius)
      : x(std::move(coords)), ilist(std::move(owned))
  {
    const int n = (int) x.size() / 3;
    lists.resize(n);
    std::mt19937 rng(12345);
    for (int i = 0; i < n; i++) {
      for (int j = 0; j < n; j++) {
        const double dx = x[3 * j] - x[3 * i], dy = x[3 * j + 1] - x[3 * i + 1], dz = x[3 * j + 2] - x[3 * i + 2];
        if (j != i && std::sqrt(dx * dx + dy * dy + dz * dz) < radius)
          lists[i].push_back(lists[i].size() % 2 ? j | kSpecialBits : j);
      }
      std::shuffle(lists[i].begin(), lists[i].end(), rng);
      numneigh.push_back((int) lists[i].size());
      firstneigh.push_back(lists[i].data());
    }
  }

  klay_neighbor_list view() const
  {
    klay_neighbor_list list;
    list.n_owned = (int64_t) ilist.size();
    list.owned = ilist.data();
    list.n_atoms = (int64_t) numneigh.size();
    list.coords = x.data();
    list.numneigh = numneigh.data();
    list.firstneigh = firstneigh.data();
    list.neighbor_mask = kNeighborMask;
    return list;
  }
};

struct Graph {
  klay_staged_graph graph;
  Graph() { klay_staged_graph_init(&graph); }
  ~Graph() { klay_staged_graph_free(&graph); }
};

class StagedGraphFromLammpsLists : public ::testing::TestWithParam<std::string> {};

TEST_P(StagedGraphFromLammpsLists, MatchesReferenceStages)
{
  using klay_test::member;
  const auto reference = klay_test::read_reference(GetParam());
  const auto &structure = member(reference, "structure");
  const double cutoff = member(structure, "r_cut").as_double();
  const int num_stages = (int) member(structure, "n_stages").as_double();
  const int n_owned = (int) member(structure, "n_contributing").as_double();
  const auto set_sizes = klay_test::integers(member(structure, "stage_set_sizes_S0_to_SD"));
  const auto &inputs = member(reference, "inputs");

  std::vector<int> owned(n_owned);
  for (int i = 0; i < n_owned; i++) owned[i] = i;
  const LammpsLists lists(klay_test::numbers(member(inputs, "coords")), owned, cutoff + 2.0);
  const klay_neighbor_list view = lists.view();
  Graph g;
  char err[1024] = "";
  ASSERT_EQ(klay_build_staged_graph(&view, cutoff, num_stages, &g.graph, err, sizeof(err)), 0) << err;

  ASSERT_EQ(g.graph.n_stage_graphs, num_stages);
  EXPECT_EQ(g.graph.n_atoms, set_sizes[num_stages]);
  for (int m = 0; m < n_owned; m++) EXPECT_EQ(g.graph.atoms[m], m) << "owned atoms come first, in ilist order";

  for (int k = 0; k < num_stages; k++) {
    const auto &rows = member(member(inputs, "edge_index" + std::to_string(k)), "data");
    const auto senders = klay_test::integers(rows.items.at(0));
    const auto receivers = klay_test::integers(rows.items.at(1));
    std::set<Edge> want;
    for (std::size_t e = 0; e < senders.size(); e++) want.emplace(senders[e], receivers[e]);

    std::set<Edge> got;
    int64_t reached = n_owned;
    for (int64_t e = 0; e < g.graph.stage_edges[k]; e++) {
      const int64_t a = g.graph.edge_pairs[2 * e], b = g.graph.edge_pairs[2 * e + 1];
      got.emplace(g.graph.atoms[a], g.graph.atoms[b]);
      reached = std::max({reached, a + 1, b + 1});
    }
    EXPECT_EQ(g.graph.stage_edges[k], (int64_t) got.size()) << "stage " << k << " repeats an edge";
    EXPECT_EQ(got, want) << "stage " << k;
    // G_k reaches S_{k+1}, which is a prefix of the model's atoms
    EXPECT_EQ(reached, set_sizes[k + 1]) << "stage " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, StagedGraphFromLammpsLists,
                         ::testing::Values("staged_nequip_staged2_si8", "staged_nequip_staged2_box20",
                                           "staged_nequip_staged3_tric12"));

// A hybrid pair style's list skips owned atoms of other types: S_0 is the ilist, not 0..n-1.
TEST(StagedGraphFromLammpsLists, OwnedSubsetIsolatedAtomAndEmptyRank)
{
  // owned atoms 0 (skipped by the list), 1 (isolated) and 2; ghost 3 next to 2
  const std::vector<double> coords = {0, 0, 0, 20, 0, 0, 5, 0, 0, 6, 0, 0};
  const LammpsLists lists(coords, {2, 1}, 3.0);
  const klay_neighbor_list view = lists.view();
  Graph g;
  char err[1024] = "";
  ASSERT_EQ(klay_build_staged_graph(&view, 2.0, 2, &g.graph, err, sizeof(err)), 0) << err;
  ASSERT_EQ(g.graph.n_atoms, 3);
  EXPECT_EQ(std::vector<int64_t>(g.graph.atoms, g.graph.atoms + 3), (std::vector<int64_t>{2, 1, 3}));
  EXPECT_EQ(std::vector<int64_t>(g.graph.stage_edges, g.graph.stage_edges + 2), (std::vector<int64_t>{2, 2}));
  std::set<Edge> edges;
  for (int64_t e = 0; e < g.graph.n_edges; e++) edges.emplace(g.graph.edge_pairs[2 * e], g.graph.edge_pairs[2 * e + 1]);
  EXPECT_EQ(edges, (std::set<Edge>{{0, 2}, {2, 0}}));

  const LammpsLists empty_rank(coords, {}, 3.0);
  const klay_neighbor_list empty_view = empty_rank.view();
  ASSERT_EQ(klay_build_staged_graph(&empty_view, 2.0, 2, &g.graph, err, sizeof(err)), 0) << err;
  EXPECT_EQ(g.graph.n_atoms, 0);
  EXPECT_EQ(g.graph.n_edges, 0);
}

}  // namespace
