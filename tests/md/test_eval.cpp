// `klay eval` end to end: the tool reads an extended-XYZ file written from a conformance case's
// structure, builds the graph itself (periodic list with shifts, or padding atoms + staged graphs)
// and must reproduce the reference energy, forces and per-atom energies to ≤1e-10 relative.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "run_command.hpp"
#include "reference.hpp"

namespace {

using klay_test::member;
using klay_test::numbers;
const std::string kConformance = KLAY_CONFORMANCE_DIR;
const std::string kOut = KLAY_TEST_OUTPUT_DIR;
const char* kElements[] = {"Si", "O"};  // species index 0, 1 of the cases

using EvalRun = klay_test::CommandResult;

EvalRun run_eval(const std::string& args) { return klay_test::run_command(std::string(KLAY_CLI) + " eval " + args); }

std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = kOut + "/" + name;
  std::ofstream(path) << text;
  return path;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string xyz_text(const std::vector<double>& pos, const std::vector<double>& species, const std::vector<double>& cell,
                     bool pbc) {
  std::ostringstream out;
  out.precision(17);
  out << species.size() << "\n";
  if (pbc) {
    out << "Lattice=\"";
    for (size_t k = 0; k < 9; ++k) out << (k ? " " : "") << cell[k];
    out << "\" ";
  }
  out << "Properties=species:S:1:pos:R:3 pbc=\"" << (pbc ? "T T T" : "F F F") << "\"\n";
  for (size_t a = 0; a < species.size(); ++a)
    out << kElements[static_cast<int>(species[a])] << " " << pos[3 * a] << " " << pos[3 * a + 1] << " "
        << pos[3 * a + 2] << "\n";
  return out.str();
}

double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double x : a) m = std::max(m, std::fabs(x));
  return m;
}

struct Expected {
  double energy;
  std::vector<double> forces, per_atom;  // per_atom may be empty
};

// Runs klay eval on (yaml + md species list, weights, structure) and compares.
void check_eval(const std::string& tag, const std::string& yaml_path, const std::string& weights,
                const std::string& xyz, const Expected& expected) {
  const std::string yaml = write_file(tag + ".yaml", read_file(yaml_path) + "\nmd:\n  species: [Si, O]\n");
  const EvalRun run = run_eval(yaml + " " + weights + " " + write_file(tag + ".xyz", xyz) + " --json");
  if (run.status != 0 && run.output.find("not implemented") != std::string::npos) GTEST_SKIP() << run.output;
  ASSERT_EQ(run.status, 0) << run.output;
  const klay::json::Value result = klay::json::parse(run.output, tag);
  const double energy = member(result, "energy").as_double();
  EXPECT_LE(std::fabs(energy - expected.energy), 1e-10 * std::fabs(expected.energy))
      << tag << ": energy " << energy << " vs " << expected.energy;
  const std::vector<double> forces = numbers(member(result, "forces"));
  ASSERT_EQ(forces.size(), expected.forces.size());
  EXPECT_LE(max_abs_difference(forces, expected.forces), 1e-10 * max_abs(expected.forces)) << tag << ": forces";
  if (!expected.per_atom.empty() && result.find("per_atom_energy")) {
    const std::vector<double> per_atom = numbers(member(result, "per_atom_energy"));
    ASSERT_EQ(per_atom.size(), expected.per_atom.size());
    EXPECT_LE(max_abs_difference(per_atom, expected.per_atom), 1e-10 * max_abs(expected.per_atom))
        << tag << ": per-atom energies";
  }
}

}  // namespace

class EvalModelCase : public ::testing::TestWithParam<const char*> {};

TEST_P(EvalModelCase, ReproducesReference) {
  const std::string dir = kConformance + "/" + GetParam();
  const auto ref = klay::json::parse_file(dir + "/reference.json");
  const auto& s = member(ref, "structure");
  const std::string xyz = xyz_text(numbers(member(s, "positions")), numbers(member(s, "species_index")),
                                   numbers(member(s, "cell")), member(s, "pbc").boolean);
  check_eval(GetParam(), dir + "/model.yaml", dir + "/weights.pth", xyz,
             {member(ref, "energy").as_double(), numbers(member(ref, "forces")),
              numbers(member(ref, "per_atom_energy"))});
}

INSTANTIATE_TEST_SUITE_P(Conformance, EvalModelCase,
                         ::testing::Values("model_nequip2_si8", "model_nequip2_box20", "model_nequip2_cluster5",
                                           "model_new_model_si8", "model_new_model_box20", "model_new_model_cluster5",
                                           "model_mace_model_si8", "model_mace_model_box20",
                                           "model_mace_model_cluster5"),
                         klay_test::case_folder_name);

class EvalStagedCase : public ::testing::TestWithParam<const char*> {};

TEST_P(EvalStagedCase, StagedAndPeriodicTwinReproduceReference) {
  const std::string dir = kConformance + "/" + GetParam();
  const auto ref = klay::json::parse_file(dir + "/reference.json");
  const auto& s = member(ref, "structure");
  const std::vector<double> species = numbers(member(s, "unit_cell_species_index"));
  const std::string xyz = xyz_text(numbers(member(s, "unit_cell_positions")), species, numbers(member(s, "cell")), true);
  const size_t n = species.size();
  std::vector<double> per_atom = numbers(member(ref, "per_atom_energy"));
  per_atom.resize(n);  // the contributing atoms
  const Expected expected{member(ref, "energy").as_double(), numbers(member(ref, "forces_folded")), per_atom};
  // The staged model: padding atoms, staged graphs, forces folded onto the unit cell.
  check_eval(std::string(GetParam()) + "_staged", dir + "/model.yaml", dir + "/weights.pth", xyz, expected);
  // Its periodic twin (edge_index + shifts): one periodic graph.
  const auto& periodic = member(ref, "periodic");
  check_eval(std::string(GetParam()) + "_periodic", dir + "/periodic_model.yaml", dir + "/periodic_weights.pth", xyz,
             {member(periodic, "energy").as_double(), numbers(member(periodic, "forces")), {}});
}

INSTANTIATE_TEST_SUITE_P(Conformance, EvalStagedCase,
                         ::testing::Values("staged_nequip_staged2_si8", "staged_nequip_staged2_box20",
                                           "staged_nequip_staged3_tric12", "staged_mace_staged2_si8"));

TEST(EvalErrors, MalformedStructureNamesTheLine) {
  const std::string dir = kConformance + "/model_nequip2_si8";
  const std::string xyz = write_file("bad.xyz", "2\nLattice=\"5 0 0 0 5 0 0 0 5\"\nSi 0 0 0\nSi 1.0 2,0 3.0\n");
  const EvalRun run = run_eval(dir + "/model.yaml " + dir + "/weights.pth " + xyz);
  EXPECT_EQ(run.status, 1);
  EXPECT_NE(run.output.find("bad.xyz:4: position: '2,0' is not a finite number"), std::string::npos) << run.output;
}

TEST(EvalErrors, UnknownElement) {
  const std::string dir = kConformance + "/model_nequip2_si8";
  const std::string xyz = write_file("unknown_element.xyz", "2\nLattice=\"5 0 0 0 5 0 0 0 5\"\nSi 0 0 0\nXx 1 1 1\n");
  const EvalRun run = run_eval(dir + "/model.yaml " + dir + "/weights.pth " + xyz);
  if (run.output.find("not implemented") != std::string::npos) GTEST_SKIP() << run.output;
  EXPECT_EQ(run.status, 1);
  EXPECT_NE(run.output.find("atom 2: 'Xx' is not a chemical element symbol"), std::string::npos) << run.output;
}

// Two atoms at one position: the edge between them has no direction, and the model's energy and
// forces are NaN. Text and --json alike refuse to print them.
TEST(EvalErrors, NonFiniteResultIsRefusedNamingTheAtoms) {
  const std::string dir = kConformance + "/model_nequip2_si8";
  const std::string xyz =
      write_file("overlapping.xyz", "3\nLattice=\"5.43 0 0 0 5.43 0 0 0 5.43\" pbc=\"T T T\"\nSi 0 0 0\nSi 0 0 0\nSi 1.3 1.3 1.3\n");
  for (const std::string json : {"", " --json"}) {
    const EvalRun run = run_eval(dir + "/model.yaml " + dir + "/weights.pth " + xyz + json);
    if (run.output.find("not implemented") != std::string::npos) GTEST_SKIP() << run.output;
    EXPECT_EQ(run.status, 1) << run.output;
    EXPECT_NE(run.output.find("the model gives a non-finite result"), std::string::npos) << run.output;
    EXPECT_NE(run.output.find("atom 1 (Si): closest neighbour at 0 A"), std::string::npos) << run.output;
    EXPECT_NE(run.output.find("atom 2 (Si): closest neighbour at 0 A"), std::string::npos) << run.output;
    EXPECT_EQ(run.output.find("\"energy\""), std::string::npos) << run.output;
  }
}

TEST(EvalErrors, ModelWithoutCoordinatesIsRefused) {
  const std::string dir = kConformance + "/model_arbitrary_and_alias";
  const std::string xyz = write_file("one_atom.xyz", "1\n\nSi 0 0 0\n");
  const EvalRun run = run_eval(dir + "/model.yaml " + dir + "/weights.pth " + xyz);
  EXPECT_EQ(run.status, 1);
  EXPECT_NE(run.output.find("model input 'x' has no meaning in MD"), std::string::npos) << run.output;
}

TEST(EvalErrors, Usage) {
  EXPECT_EQ(run_eval("only_one.yaml").status, 2);
  EXPECT_EQ(run_eval("a b c --bogus").status, 2);
}
