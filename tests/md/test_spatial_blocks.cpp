// Spatial blocks: the owned atoms split by bisection, each block's staged graph cut out of the
// caller's largest graph, and MdModel::compute over blocks (one per thread) against the plain
// evaluation of all atoms at once: the same energy, per-atom energies, forces, virial, per-atom
// virial and edge gradients up to summation order, for LAMMPS-style ghost atoms, a periodic graph
// with shifts and an open cluster.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <tuple>

#include "testing/diamond_frames.hpp"
#include "md/md_model.hpp"
#include "md/spatial_blocks.hpp"
#include "md/staged.hpp"
#include "md/structure_eval.hpp"

using klay::md::AtomsView;
using klay::md::MdModel;

namespace {

const std::string kExamples = KLAY_EXAMPLES_DIR;
const std::string kConformance = KLAY_CONFORMANCE_DIR;

struct Outputs {
  double energy = 0;
  std::vector<double> per_atom_energy, forces, virial, per_atom_virial, edge_gradients;
};

Outputs compute(const MdModel& model, const AtomsView& atoms, bool with_shift_outputs) {
  Outputs out;
  out.per_atom_energy.assign(atoms.n_atoms, 0);
  out.forces.assign(3 * atoms.n_atoms, 0);
  if (with_shift_outputs) {
    out.per_atom_virial.assign(6 * atoms.n_atoms, 0);
    out.edge_gradients.assign(3 * atoms.n_edges, 0);
  }
  klay::md::ResultsView results;
  results.per_atom_energy = out.per_atom_energy.data();
  results.forces = out.forces.data();
  results.per_atom_virial = with_shift_outputs ? out.per_atom_virial.data() : nullptr;
  results.edge_gradients = with_shift_outputs ? out.edge_gradients.data() : nullptr;
  model.compute(atoms, results);
  EXPECT_TRUE(results.per_atom_energy_filled);
  out.energy = results.energy;
  out.virial.assign(results.virial, results.virial + 6);
  return out;
}

// Largest difference relative to the largest magnitude of `expected`.
double relative_difference(const std::vector<double>& actual, const std::vector<double>& expected) {
  EXPECT_EQ(actual.size(), expected.size());
  double largest = 0, worst = 0;
  for (size_t k = 0; k < expected.size(); ++k) {
    largest = std::max(largest, std::abs(expected[k]));
    worst = std::max(worst, std::abs(actual[k] - expected[k]));
  }
  return largest > 0 ? worst / largest : worst;
}

void expect_same(const Outputs& actual, const Outputs& expected, const std::string& what) {
  EXPECT_NEAR(actual.energy, expected.energy, 1e-12 * std::abs(expected.energy)) << what;
  EXPECT_LE(relative_difference(actual.per_atom_energy, expected.per_atom_energy), 1e-12) << what;
  EXPECT_LE(relative_difference(actual.forces, expected.forces), 1e-12) << what;
  EXPECT_LE(relative_difference(actual.virial, expected.virial), 1e-12) << what;
  EXPECT_LE(relative_difference(actual.per_atom_virial, expected.per_atom_virial), 1e-12) << what;
  EXPECT_LE(relative_difference(actual.edge_gradients, expected.edge_gradients), 1e-12) << what;
  double largest_force = 0;
  for (double f : expected.forces) largest_force = std::max(largest_force, std::abs(f));
  EXPECT_GT(largest_force, 1e-3) << what << ": forces too small to compare";
}

// The whole evaluation against blocks of at most `block_atoms` on one thread and on two threads;
// proves through the counter that blocks ran.
void expect_blocks_agree(MdModel& model, const AtomsView& atoms, bool with_shift_outputs, int64_t block_atoms,
                         const std::string& what) {
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  model.set_spatial_blocks(false, block_atoms);
  const int64_t before = model.blocks_evaluated();
  const Outputs whole = compute(model, atoms, with_shift_outputs);
  ASSERT_EQ(model.blocks_evaluated(), before) << what;

  model.set_spatial_blocks(true, block_atoms);
  const int64_t expected_blocks = klay::md::spatial_block_count(atoms.n_owned, 1, block_atoms);
  ASSERT_GE(expected_blocks, 3) << what << ": the test needs several blocks";
  expect_same(compute(model, atoms, with_shift_outputs), whole, what + ", blocks on one thread");
  EXPECT_EQ(model.blocks_evaluated(), before + expected_blocks) << what;

  at::set_num_threads(2);
  const int64_t two_thread_blocks = klay::md::spatial_block_count(atoms.n_owned, 2, block_atoms);
  const Outputs two_threads = compute(model, atoms, with_shift_outputs);
  at::set_num_threads(threads);
  expect_same(two_threads, whole, what + ", two threads");
  EXPECT_EQ(two_thread_blocks % 2, 0) << what;
  EXPECT_EQ(model.blocks_evaluated(), before + expected_blocks + two_thread_blocks) << what;
}

klay::md::Structure diamond_cell(int n_cells, uint64_t seed, bool two_elements) {
  std::mt19937_64 generator(seed);
  klay::md::Structure s = diamond::distorted_cell(n_cells, {1.01, 0.99, 1.0}, generator, 0.1);
  if (two_elements)
    for (size_t a = 0; a < s.elements.size(); a += 3) s.elements[a] = "C";
  return s;
}

// LAMMPS's way: the unit-cell atoms owned, their periodic images within D·r_cut explicit ghost
// atoms, staged graphs over them, no shifts.
struct GhostAtoms {
  klay::md::PaddedAtoms padded;
  klay::md::StagedGraph graph;
  std::vector<int64_t> species;
  AtomsView view() const {
    AtomsView v;
    v.n_atoms = padded.n_atoms();
    v.n_owned = padded.n_owned;
    v.coords = padded.coords.data();
    v.species = species.data();
    v.n_edges = graph.n_edges();
    v.edge_pairs = graph.edge_pairs.data();
    v.n_stage_graphs = static_cast<int>(graph.stage_edges.size());
    v.stage_edges = graph.stage_edges.data();
    return v;
  }
};

GhostAtoms with_ghosts(MdModel& model, const klay::md::Structure& s) {
  GhostAtoms g;
  const int depth = model.num_stages();
  g.padded = klay::md::pad_with_images(s.positions.data(), s.size(), s.cell,
                                       depth * model.cutoff() + klay::md::kPaddingMargin);
  g.graph = klay::md::staged_graph_of_atoms(g.padded.coords.data(), g.padded.n_owned, g.padded.n_atoms(),
                                            model.cutoff(), depth);
  for (int64_t a = 0; a < g.padded.n_atoms(); ++a) g.species.push_back(model.element_code(s.elements[g.padded.image_of[a]]));
  return g;
}

}  // namespace

TEST(SpatialBlocks, BisectionCoversTheOwnedAtomsInEqualCompactParts) {
  std::mt19937_64 generator(3);
  const klay::md::Structure s = diamond::distorted_cell(3, {1.0, 1.0, 1.0}, generator, 0.05);
  for (int64_t parts : {1, 2, 3, 5, 8}) {
    const auto blocks = klay::md::bisect_owned_atoms(s.positions.data(), s.size(), parts);
    ASSERT_EQ(static_cast<int64_t>(blocks.size()), parts);
    std::set<int64_t> seen;
    size_t smallest = blocks[0].size(), largest = 0;
    for (const auto& block : blocks) {
      EXPECT_TRUE(std::is_sorted(block.begin(), block.end()));
      seen.insert(block.begin(), block.end());
      smallest = std::min(smallest, block.size());
      largest = std::max(largest, block.size());
    }
    EXPECT_EQ(static_cast<int64_t>(seen.size()), s.size()) << parts << " parts";
    EXPECT_LE(largest - smallest, 1u) << parts << " parts";
  }
  // Two halves of a cube split across its longest (x, stretched) axis: every x of one below every x of the other.
  klay::md::Structure stretched = s;
  for (int64_t a = 0; a < s.size(); ++a) stretched.positions[3 * a] *= 2;
  const auto halves = klay::md::bisect_owned_atoms(stretched.positions.data(), s.size(), 2);
  double low_max = -1e300, high_min = 1e300;
  for (int64_t a : halves[0]) low_max = std::max(low_max, stretched.positions[3 * a]);
  for (int64_t a : halves[1]) high_min = std::min(high_min, stretched.positions[3 * a]);
  EXPECT_LE(low_max, high_min);
}

TEST(SpatialBlocks, BlockCountIsAMultipleOfTheThreadsUnderTheCap) {
  EXPECT_EQ(klay::md::spatial_block_count(1000, 1, 0), 1);
  EXPECT_EQ(klay::md::spatial_block_count(1000, 2, 0), 1);
  EXPECT_EQ(klay::md::spatial_block_count(1000, 1, 1000), 1);
  EXPECT_EQ(klay::md::spatial_block_count(1000, 1, 300), 4);
  EXPECT_EQ(klay::md::spatial_block_count(1000, 3, 300), 6);
  EXPECT_EQ(klay::md::spatial_block_count(1000, 2, 999), 2);
  EXPECT_EQ(klay::md::spatial_block_count(3, 8, 1), 3);
  EXPECT_EQ(klay::md::spatial_block_count(1, 2, 0), 1);
}

// Below the cap several threads share the whole evaluation; above it each gets the same number of blocks.
TEST(SpatialBlocks, BelowTheCapSeveralThreadsShareTheWhole) {
  using klay::md::spatial_block_count;
  EXPECT_EQ(spatial_block_count(4096, 1, 4096), 1);
  EXPECT_EQ(spatial_block_count(4096, 2, 4096), 1);
  EXPECT_EQ(spatial_block_count(1000, 2, 1000), 1);
  EXPECT_EQ(spatial_block_count(512, 3, 4096), 1);
  EXPECT_EQ(spatial_block_count(4097, 2, 4096), 2);
  EXPECT_EQ(spatial_block_count(8193, 2, 4096), 4);
  EXPECT_EQ(spatial_block_count(8192, 2, 0), 1);  // no cap: blocks off
}

// A block of all owned atoms is the staged graph itself: the same atoms in the same order, and
// each stage the same edge set.
TEST(SpatialBlocks, BlockOfAllOwnedAtomsIsTheStagedGraph) {
  std::mt19937_64 generator(4);
  const klay::md::Structure s = diamond::distorted_cell(2, {1.0, 1.0, 1.0}, generator, 0.1);
  const auto padded = klay::md::pad_with_images(s.positions.data(), s.size(), s.cell, 3 * 3.0 + klay::md::kPaddingMargin);
  const auto caller = klay::md::staged_graph_of_atoms(padded.coords.data(), padded.n_owned, padded.n_atoms(), 3.0, 3);
  std::vector<int64_t> owned(static_cast<size_t>(padded.n_owned));
  for (int64_t a = 0; a < padded.n_owned; ++a) owned[a] = a;
  klay::md::StagedGraph expected;
  klay::md::StagedGraphBuilder builder;
  builder.build(owned.data(), padded.n_owned, padded.n_atoms(), 3,
                [&](int64_t atom, std::vector<int64_t>& out) {
                  for (int64_t e = 0; e < caller.n_edges(); ++e)
                    if (caller.edge_pairs[2 * e] == atom) out.push_back(caller.edge_pairs[2 * e + 1]);
                },
                /*compact=*/true, expected);
  const klay::md::EdgesByAtom edges(caller.edge_pairs.data(), caller.n_edges(), padded.n_atoms());
  const klay::md::SpatialBlock block = edges.block(owned, 3);
  EXPECT_EQ(block.atoms, expected.atoms);
  ASSERT_EQ(block.stage_edges, expected.stage_edges);
  int64_t begin = 0;
  for (int64_t end : block.stage_edges) {
    std::set<std::pair<int64_t, int64_t>> got, want;
    for (int64_t e = begin; e < end; ++e) {
      got.emplace(block.edge_pairs[2 * e], block.edge_pairs[2 * e + 1]);
      want.emplace(expected.edge_pairs[2 * e], expected.edge_pairs[2 * e + 1]);
      const int64_t c = block.edges[e];  // the caller's edge joins the same caller atoms
      EXPECT_EQ(block.atoms[block.edge_pairs[2 * e]], caller.edge_pairs[2 * c]);
      EXPECT_EQ(block.atoms[block.edge_pairs[2 * e + 1]], caller.edge_pairs[2 * c + 1]);
    }
    EXPECT_EQ(got, want);
    // Each stage's edges in caller order, each once.
    EXPECT_EQ(std::adjacent_find(block.edges.begin() + begin, block.edges.begin() + end, std::greater_equal<>()),
              block.edges.begin() + end);
    begin = end;
  }
}

// The default cap bounds a block's memory, so float32 blocks hold twice the atoms of float64 ones.
TEST(SpatialBlocks, DefaultCapHoldsTheSameMemoryInEitherDtype) {
  const auto f64 = MdModel::load(kExamples + "/si/model.yaml", kExamples + "/si/model.pth");
  const auto f32 = MdModel::load(kExamples + "/si/model.yaml", kExamples + "/si/model.pth", /*single_precision=*/true);
  EXPECT_EQ(f64->default_block_atoms(), MdModel::kDefaultBlockAtoms);
  EXPECT_EQ(f32->default_block_atoms(), 2 * MdModel::kDefaultBlockAtoms);
  if (std::getenv("KLAY_BLOCK_ATOMS") == nullptr) {
    EXPECT_EQ(f64->block_atoms(), f64->default_block_atoms());
    EXPECT_EQ(f32->block_atoms(), f32->default_block_atoms());
  }
}

TEST(SpatialBlocks, SiliconExampleWithGhostAtoms) {
  auto model = MdModel::load(kExamples + "/si/model.yaml", kExamples + "/si/model.pth");
  const klay::md::PreparedStructure prepared = klay::md::prepare_structure(*model, diamond_cell(3, 1, false));
  ASSERT_GT(prepared.n_model_atoms(), prepared.n_cell_atoms);
  expect_blocks_agree(*model, prepared.view(), false, 40, "examples/si, 216 atoms with ghosts");
}

TEST(SpatialBlocks, SiliconExampleOnAnOpenCluster) {
  auto model = MdModel::load(kExamples + "/si/model.yaml", kExamples + "/si/model.pth");
  klay::md::Structure cluster = diamond_cell(3, 2, false);
  cluster.has_lattice = false;
  cluster.cell = klay::md::Cell::open();
  const klay::md::PreparedStructure prepared = klay::md::prepare_structure(*model, cluster);
  ASSERT_EQ(prepared.n_model_atoms(), prepared.n_cell_atoms);
  expect_blocks_agree(*model, prepared.view(), false, 50, "examples/si, open 216-atom cluster");
}

class StagedConformanceBlocks : public ::testing::TestWithParam<const char*> {};

TEST_P(StagedConformanceBlocks, StagedModelWithGhostAtoms) {
  const std::string dir = kConformance + "/" + GetParam();
  auto model = MdModel::load(dir + "/model.yaml", dir + "/weights.pth");
  const klay::md::PreparedStructure prepared = klay::md::prepare_structure(*model, diamond_cell(2, 5, true));
  expect_blocks_agree(*model, prepared.view(), false, 20, std::string(GetParam()) + " with ghosts");
}

// The same weights fed the periodic way (one graph with shifts, no ghosts: edges repeat an atom
// pair with different shifts) and LAMMPS's way (explicit ghosts, zero shifts), with edge
// gradients and per-atom virials.
TEST_P(StagedConformanceBlocks, PeriodicModelWithShiftsAndWithGhostAtoms) {
  const std::string dir = kConformance + "/" + GetParam();
  auto model = MdModel::load(dir + "/periodic_model.yaml", dir + "/periodic_weights.pth");
  ASSERT_TRUE(model->takes_shifts());
  const klay::md::Structure s = diamond_cell(2, 6, true);
  const klay::md::PreparedStructure periodic = klay::md::prepare_structure(*model, s);
  ASSERT_FALSE(periodic.shifts.empty());
  expect_blocks_agree(*model, periodic.view(), true, 20, std::string(GetParam()) + " periodic with shifts");
  const GhostAtoms ghosts = with_ghosts(*model, s);
  expect_blocks_agree(*model, ghosts.view(), true, 20, std::string(GetParam()) + " periodic model with ghosts");
}

INSTANTIATE_TEST_SUITE_P(Conformance, StagedConformanceBlocks,
                         ::testing::Values("staged_nequip_staged2_box20", "staged_nequip_staged3_tric12",
                                           "staged_mace_staged2_si8"),
                         [](const ::testing::TestParamInfo<const char*>& info) { return std::string(info.param); });
