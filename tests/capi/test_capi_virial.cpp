// The virial of klay.h (klay_results.virial, per_atom_virial), through the C API only, the way a
// host that is not LAMMPS uses it: a periodic cell becomes its atoms (owned) plus explicit images
// out to D * r_cut (ghosts), klay_build_staged_graph gives the staged graphs, klay_model_compute
// the energy of the owned atoms and its virial. Checked against -dE/d(strain) by central
// differences of that energy, straining the cell and every atom; per-atom virials must add up to
// the global one. Also an open cluster (no ghosts) and the refusal of a per-atom virial by a model
// without shifts.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "testing/diamond_frames.hpp"
#include "klay.h"

namespace {

using Matrix = std::array<std::array<double, 3>, 3>;
constexpr std::array<std::array<int, 2>, 6> kVoigt = {{{0, 0}, {1, 1}, {2, 2}, {0, 1}, {0, 2}, {1, 2}}};

struct Atoms {
  std::vector<double> positions;  // [n][3], the owned atoms
  Matrix cell{};                  // rows are the cell vectors
  bool periodic = true;
};

struct Evaluation {
  double energy = 0;
  std::array<double, 6> virial{};
  std::vector<double> per_atom_virial;  // [model atoms][6], empty when not asked for
  std::vector<int64_t> image_of;        // [model atoms]: the owned atom each one is a copy of
};

struct ModelFile {
  const char* label;
  std::string yaml, weights;
};

// ctest names and failure messages show the label, not the struct's bytes.
void PrintTo(const ModelFile& file, std::ostream* out) { *out << file.label; }

std::string conformance(const std::string& name, const std::string& file) {
  return std::string(KLAY_CONFORMANCE_DIR) + "/" + name + "/" + file;
}

std::vector<ModelFile> model_files() {
  return {{"examples_si", std::string(KLAY_EXAMPLES_DIR) + "/si/model.yaml",
           std::string(KLAY_EXAMPLES_DIR) + "/si/model.pth"},
          {"staged_nequip_si8", conformance("staged_nequip_staged2_si8", "model.yaml"),
           conformance("staged_nequip_staged2_si8", "weights.pth")},
          {"nequip_with_shifts", conformance("model_nequip2_si8", "model.yaml"),
           conformance("model_nequip2_si8", "weights.pth")}};
}

struct ModelHandle {
  klay_model* model = nullptr;
  std::string error;
  explicit ModelHandle(const ModelFile& file) {
    char err[8192] = "";
    model = klay_model_load(file.yaml.c_str(), file.weights.c_str(), nullptr, err, sizeof err);
    error = err;
  }
  ~ModelHandle() { klay_model_free(model); }
};

// Diamond Si, rattled, on a sheared (triclinic) cell, so every virial component is non-zero.
Atoms rattled_triclinic_silicon() {
  std::mt19937_64 generator(20261206);
  const klay::md::Structure cubic = diamond::distorted_cell(1, {1.0, 1.02, 0.97}, generator, 0.08);
  const Matrix shear = {{{1.0, 0.0, 0.0}, {0.06, 1.0, 0.0}, {-0.04, 0.05, 1.0}}};  // x' = x shear
  Atoms atoms;
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 3; ++b)
      for (int k = 0; k < 3; ++k) atoms.cell[a][b] += cubic.cell.vectors[a][k] * shear[k][b];
  for (size_t i = 0; i < cubic.positions.size(); i += 3)
    for (int b = 0; b < 3; ++b) {
      double x = 0;
      for (int k = 0; k < 3; ++k) x += cubic.positions[i + k] * shear[k][b];
      atoms.positions.push_back(x);
    }
  return atoms;
}

// x'_b = x_b + h x_a for every atom and cell vector: -dE/dh is the virial component (a, b).
Atoms strained(const Atoms& atoms, int a, int b, double h) {
  Atoms out = atoms;
  for (size_t i = 0; i < out.positions.size(); i += 3) out.positions[i + b] += h * atoms.positions[i + a];
  for (auto& row : out.cell) row[b] += h * row[a];
  return out;
}

// Owned atoms first, then every image within reach (the staged graph keeps the ones it needs).
void add_images(const Atoms& atoms, double reach, std::vector<double>& coords, std::vector<int64_t>& image_of) {
  const int64_t n = static_cast<int64_t>(atoms.positions.size() / 3);
  coords = atoms.positions;
  for (int64_t i = 0; i < n; ++i) image_of.push_back(i);
  if (!atoms.periodic) return;
  // Images in shells up to `reach` over the cell's narrowest width away, plus one for atoms near
  // the far face.
  const Matrix& c = atoms.cell;
  const double volume = std::fabs(c[0][0] * (c[1][1] * c[2][2] - c[1][2] * c[2][1]) -
                                  c[0][1] * (c[1][0] * c[2][2] - c[1][2] * c[2][0]) +
                                  c[0][2] * (c[1][0] * c[2][1] - c[1][1] * c[2][0]));
  int range[3];
  for (int k = 0; k < 3; ++k) {
    const auto& u = c[(k + 1) % 3];
    const auto& v = c[(k + 2) % 3];
    const double area = std::hypot(u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]);
    range[k] = static_cast<int>(std::ceil(reach / (volume / area))) + 1;
  }
  for (int s0 = -range[0]; s0 <= range[0]; ++s0)
    for (int s1 = -range[1]; s1 <= range[1]; ++s1)
      for (int s2 = -range[2]; s2 <= range[2]; ++s2) {
        if (s0 == 0 && s1 == 0 && s2 == 0) continue;
        for (int64_t i = 0; i < n; ++i) {
          for (int b = 0; b < 3; ++b)
            coords.push_back(atoms.positions[3 * i + b] + s0 * c[0][b] + s1 * c[1][b] + s2 * c[2][b]);
          image_of.push_back(i);
        }
      }
}

Evaluation evaluate(klay_model* model, const Atoms& atoms, bool per_atom_virial) {
  const double cutoff = klay_model_cutoff(model);
  const int depth = klay_model_num_stages(model);
  std::vector<double> coords;
  std::vector<int64_t> image_of;
  add_images(atoms, depth * cutoff, coords, image_of);
  const int n_all = static_cast<int>(image_of.size());

  // A full list with every atom closer than the cutoff (klay_build_staged_graph checks distances).
  std::vector<std::vector<int>> neighbors(n_all);
  for (int i = 0; i < n_all; ++i)
    for (int j = 0; j < n_all; ++j) {
      if (i == j) continue;
      double r2 = 0;
      for (int b = 0; b < 3; ++b) r2 += (coords[3 * j + b] - coords[3 * i + b]) * (coords[3 * j + b] - coords[3 * i + b]);
      if (r2 < cutoff * cutoff) neighbors[i].push_back(j);
    }
  std::vector<int> numneigh(n_all);
  std::vector<const int*> firstneigh(n_all);
  for (int i = 0; i < n_all; ++i) {
    numneigh[i] = static_cast<int>(neighbors[i].size());
    firstneigh[i] = neighbors[i].data();
  }
  klay_neighbor_list list{};
  list.n_owned = static_cast<int64_t>(atoms.positions.size() / 3);
  list.n_atoms = n_all;
  list.coords = coords.data();
  list.numneigh = numneigh.data();
  list.firstneigh = firstneigh.data();
  klay_staged_graph graph;
  klay_staged_graph_init(&graph);
  char err[8192] = "";
  EXPECT_EQ(klay_build_staged_graph(&list, cutoff, depth, &graph, err, sizeof err), 0) << err;

  int64_t si = 0;
  EXPECT_EQ(klay_model_element_code(model, "Si", &si, err, sizeof err), 0) << err;
  const int64_t n = graph.n_atoms;
  std::vector<double> model_coords;
  Evaluation result;
  for (int64_t m = 0; m < n; ++m) {
    model_coords.insert(model_coords.end(), &coords[3 * graph.atoms[m]], &coords[3 * graph.atoms[m]] + 3);
    result.image_of.push_back(image_of[graph.atoms[m]]);
  }
  const std::vector<int64_t> species(n, si);
  klay_atoms input{n, graph.n_owned, model_coords.data(), species.data(), graph.n_edges, graph.edge_pairs,
                   graph.n_stage_graphs, graph.stage_edges};
  std::vector<double> forces(3 * n);
  if (per_atom_virial) result.per_atom_virial.assign(6 * n, 0.0);
  klay_results out = {};
  out.forces = forces.data();
  out.per_atom_virial = per_atom_virial ? result.per_atom_virial.data() : nullptr;
  EXPECT_EQ(klay_model_compute(model, &input, &out, err, sizeof err), 0) << err;
  klay_staged_graph_free(&graph);
  result.energy = out.energy;
  std::copy(out.virial, out.virial + 6, result.virial.begin());
  return result;
}

double largest(const std::array<double, 6>& w) {
  double m = 0;
  for (double v : w) m = std::max(m, std::fabs(v));
  return m;
}

class CapiVirial : public ::testing::TestWithParam<ModelFile> {};

// Central differences, h = 1e-5: truncation ~h^2 |E'''| and rounding ~1e-16 |E| / h, both far
// below 1e-7 of the virial here.
void expect_virial_is_minus_strain_derivative(klay_model* model, const Atoms& atoms) {
  constexpr double h = 1e-5;
  const Evaluation at_rest = evaluate(model, atoms, false);
  const double scale = largest(at_rest.virial);
  ASSERT_GT(scale, 0.1) << "a virial this small would not test much";
  for (int c = 0; c < 6; ++c) {
    const auto [a, b] = kVoigt[c];
    const double plus = evaluate(model, strained(atoms, a, b, h), false).energy;
    const double minus = evaluate(model, strained(atoms, a, b, -h), false).energy;
    const double finite_difference = -(plus - minus) / (2 * h);
    EXPECT_NEAR(at_rest.virial[c], finite_difference, 1e-7 * scale) << "component " << c;
  }
}

TEST_P(CapiVirial, OfAPeriodicCellWithGhostImagesIsMinusTheStrainDerivativeOfItsEnergy) {
  ModelHandle handle(GetParam());
  ASSERT_NE(handle.model, nullptr) << handle.error;
  expect_virial_is_minus_strain_derivative(handle.model, rattled_triclinic_silicon());
}

TEST_P(CapiVirial, OfAnOpenClusterIsMinusTheStrainDerivativeOfItsEnergy) {
  ModelHandle handle(GetParam());
  ASSERT_NE(handle.model, nullptr) << handle.error;
  Atoms cluster = rattled_triclinic_silicon();
  cluster.periodic = false;
  expect_virial_is_minus_strain_derivative(handle.model, cluster);
}

INSTANTIATE_TEST_SUITE_P(Models, CapiVirial, ::testing::ValuesIn(model_files()),
                         [](const auto& info) { return std::string(info.param.label); });

TEST(CapiVirial, PerAtomVirialsOfOwnedAndGhostAtomsAddUpToTheGlobalVirial) {
  ModelHandle handle(model_files()[2]);
  ASSERT_NE(handle.model, nullptr) << handle.error;
  char err[8192] = "";
  ASSERT_EQ(klay_model_check_outputs(handle.model, KLAY_OUTPUT_PER_ATOM_VIRIAL, err, sizeof err), 0) << err;
  const Evaluation e = evaluate(handle.model, rattled_triclinic_silicon(), true);
  const size_t n_owned = 8;
  ASSERT_GT(e.image_of.size(), n_owned) << "no ghost atoms";
  // Folded onto the cell's atoms (ghost images' shares go to the atoms they are images of).
  std::vector<std::array<double, 6>> folded(n_owned, std::array<double, 6>{});
  std::array<double, 6> sum{};
  for (size_t m = 0; m < e.image_of.size(); ++m)
    for (int c = 0; c < 6; ++c) {
      folded[e.image_of[m]][c] += e.per_atom_virial[6 * m + c];
      sum[c] += e.per_atom_virial[6 * m + c];
    }
  const double scale = largest(e.virial);
  for (int c = 0; c < 6; ++c) {
    EXPECT_NEAR(sum[c], e.virial[c], 1e-12 * scale) << "component " << c;
    double folded_sum = 0;
    for (const auto& w : folded) folded_sum += w[c];
    EXPECT_NEAR(folded_sum, e.virial[c], 1e-12 * scale) << "component " << c;
  }
  // The split is not trivial: the atoms' shares differ.
  EXPECT_NE(folded[0][0], folded[1][0]);
}

TEST(CapiVirial, AModelWithoutShiftsRefusesAPerAtomVirialWithTheReason) {
  ModelHandle handle(model_files()[1]);
  ASSERT_NE(handle.model, nullptr) << handle.error;
  char err[8192] = "";
  EXPECT_EQ(klay_model_check_outputs(handle.model, KLAY_OUTPUT_PER_ATOM_VIRIAL, err, sizeof err), -1);
  EXPECT_NE(std::string(err).find("cannot compute a per-atom virial with this model: the model has no 'shifts' input"),
            std::string::npos) << err;
  EXPECT_EQ(klay_model_check_outputs(handle.model, KLAY_OUTPUT_PER_ATOM_ENERGY, err, sizeof err), 0) << err;

  // klay_model_compute gives the same reason, before any work.
  const double coords[6] = {0, 0, 0, 2.3, 0, 0};
  const int64_t species[2] = {0, 0};
  const int64_t pairs[4] = {0, 1, 1, 0};
  const int64_t stages[2] = {2, 2};
  const klay_atoms atoms{2, 2, coords, species, 2, pairs, 2, stages};
  double forces[6], per_atom_virial[12];
  klay_results out = {};
  out.forces = forces;
  out.per_atom_virial = per_atom_virial;
  EXPECT_EQ(klay_model_compute(handle.model, &atoms, &out, err, sizeof err), -1);
  EXPECT_NE(std::string(err).find("cannot compute a per-atom virial"), std::string::npos) << err;
}

}  // namespace
