// What the MD side infers from a model (docs/design.md#md-conventions) and what it refuses.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "md/md_model.hpp"
#include "base/error.hpp"
#include "runtime/model.hpp"

using klay::md::MdModel;

namespace {

const std::string kConformance = KLAY_CONFORMANCE_DIR;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The message of the klay::Error that building `yaml` throws, "" if it builds.
std::string md_error(const std::string& yaml) {
  try {
    MdModel model(klay::Model::load_string(yaml, "m.yaml", ""));
  } catch (const klay::Error& e) {
    return e.what();
  }
  return "";
}

bool not_implemented(const std::string& message) { return message.find("not implemented") != std::string::npos; }

#define LOAD_OR_SKIP(var, expr)                                              \
  std::unique_ptr<MdModel> var;                                              \
  try {                                                                      \
    var = (expr);                                                            \
  } catch (const klay::Error& e) {                                           \
    if (not_implemented(e.what())) GTEST_SKIP() << e.what();                 \
    FAIL() << e.what();                                                      \
  }

// E = sum of |x|^2 per atom; `energy_layer` says how the per-atom values become the energy.
std::string harmonic_yaml(const std::string& inputs, const std::string& energy_layer, const std::string& md = "") {
  return "model_inputs:\n" + inputs +
         "model_layers:\n"
         "  squared: {type: ArbitraryModule, config: {target: torch.square}, inputs: {0: model_inputs.coords}}\n"
         "  atom_energy:\n"
         "    type: ArbitraryModule\n"
         "    config: {target: torch.sum, kwargs: {dim: [1], keepdim: true}}\n"
         "    inputs: {0: squared}\n" +
         energy_layer + "model_outputs:\n  energy: total\n" + md;
}

const std::string kCoordsOnly = "  coords: x\n";
const std::string kTotalSum =
    "  total: {type: ArbitraryModule, config: {target: torch.sum}, inputs: {0: atom_energy}}\n";

}  // namespace

TEST(MdModel, StagedModelInference) {
  LOAD_OR_SKIP(model, MdModel::load(kConformance + "/staged_nequip_staged3_tric12/model.yaml",
                                    kConformance + "/staged_nequip_staged3_tric12/weights.pth"));
  EXPECT_EQ(model->cutoff(), 3.3);  // r_max of radial_basis2 (reference structure.r_cut)
  EXPECT_EQ(model->num_stages(), 3);
  EXPECT_EQ(model->num_graph_inputs(), 3);
  EXPECT_FALSE(model->takes_shifts());
  EXPECT_TRUE(model->has_per_atom_energy());  // read from layer readout, the sum's src
  EXPECT_EQ(model->element_code("Si"), 0);     // species indices by first appearance
  EXPECT_EQ(model->element_code("O"), 1);
  EXPECT_EQ(model->element_code("Si"), 0);
  EXPECT_NE(model->describe().find("a sum by owned/ghost index in layer 'total_energy'"), std::string::npos)
      << model->describe();
}

TEST(MdModel, PeriodicModelInference) {
  LOAD_OR_SKIP(model, MdModel::load(kConformance + "/model_nequip2_si8/model.yaml",
                                    kConformance + "/model_nequip2_si8/weights.pth"));
  EXPECT_EQ(model->cutoff(), 4.0);
  EXPECT_EQ(model->num_stages(), 2);  // two ConvNetLayers on one edge_index
  EXPECT_EQ(model->num_graph_inputs(), 1);
  EXPECT_TRUE(model->takes_shifts());
  EXPECT_TRUE(model->has_per_atom_energy());  // output per_atom_energy = the sum's src
}

TEST(MdModel, NewModelTakesAtomicNumbersUnlessSpeciesDeclared) {
  LOAD_OR_SKIP(plain, MdModel::load(kConformance + "/model_new_model_si8/model.yaml", ""));
  EXPECT_EQ(plain->element_code("Si"), 14);
  EXPECT_THROW(plain->element_code("Xx"), klay::Error);
  const std::string yaml = read_file(kConformance + "/model_new_model_si8/model.yaml") + "\nmd:\n  species: [Si, O]\n";
  auto declared = std::make_unique<MdModel>(klay::Model::load_string(yaml, "new_model.yaml", ""));
  EXPECT_EQ(declared->element_code("O"), 1);
  try {
    declared->element_code("C");
    FAIL() << "an element outside md.species was accepted";
  } catch (const klay::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'C' is not in the model's species list"), std::string::npos) << e.what();
  }
}

TEST(MdModel, RefusesModelWithoutCoordinates) {
  const std::string dir = kConformance + "/model_arbitrary_and_alias";
  try {
    MdModel::load(dir + "/model.yaml", dir + "/weights.pth");
    FAIL() << "accepted";
  } catch (const klay::Error& e) {
    EXPECT_NE(std::string(e.what()).find("model input 'x' has no meaning in MD"), std::string::npos) << e.what();
  }
  // Mapping the input does not help: there still is no coordinates input... unless mapped to coords.
  const std::string no_coords = "model_inputs:\n  species: s\nmodel_layers:\n"
                                "  e: {type: ArbitraryModule, config: {target: torch.square}, inputs: {0: model_inputs.species}}\n"
                                "model_outputs:\n  energy: e\n";
  EXPECT_NE(md_error(no_coords).find("the model has no coordinates input"), std::string::npos) << md_error(no_coords);
}

TEST(MdModel, MdSectionErrors) {
  const std::string sum = "  total: {type: KIMAPISumIndex, inputs: {src: atom_energy, index: model_inputs.contributions}}\n";
  const std::string inputs = kCoordsOnly + "  contributions: c\n";
  std::string e = md_error(harmonic_yaml(inputs, sum, "md:\n  cutof: 4.0\n"));
  EXPECT_NE(e.find("unknown key 'cutof' in the md section (did you mean 'cutoff'?)"), std::string::npos) << e;
  EXPECT_NE(e.find("m.yaml:"), std::string::npos) << "no position: " << e;
  e = md_error(harmonic_yaml(inputs, sum, "md:\n  energy: nope\n"));
  EXPECT_NE(e.find("md.energy: 'nope' is not a model output"), std::string::npos) << e;
  e = md_error(harmonic_yaml(inputs, sum, "md:\n  inputs: {coords: coordz}\n"));
  EXPECT_NE(e.find("'coordz' is not an MD input name (did you mean 'coords'?)"), std::string::npos) << e;
  e = md_error(harmonic_yaml(inputs, sum, "md:\n  cutoff: -1\n"));
  EXPECT_NE(e.find("md.cutoff must be positive"), std::string::npos) << e;
  std::string renamed = harmonic_yaml("  x: coordinates\n  contributions: c\n", sum, "md:\n  inputs: {x: coords}\n");
  renamed.replace(renamed.find("model_inputs.coords"), 19, "model_inputs.x");
  e = md_error(renamed);
  if (not_implemented(e)) GTEST_SKIP() << e;
  EXPECT_EQ(e, "") << "a mapped input name must be accepted";
  e = md_error(harmonic_yaml(kCoordsOnly + "  contributing: c\n",
                             "  total: {type: KIMAPISumIndex, inputs: {src: atom_energy, index: model_inputs.contributing}}\n"));
  EXPECT_NE(e.find("returns the ghost atoms' sum"), std::string::npos) << e;
}

TEST(MdModel, SingleTotalEnergyIsRefusedWithGhosts) {
  std::unique_ptr<MdModel> model;
  try {
    model = std::make_unique<MdModel>(klay::Model::load_string(harmonic_yaml(kCoordsOnly, kTotalSum), "m.yaml", ""));
  } catch (const klay::Error& e) {
    if (not_implemented(e.what())) GTEST_SKIP() << e.what();
    FAIL() << e.what();
  }
  const std::vector<double> coords{1, 2, 3, 0.5, 0, 0};
  klay::md::AtomsView atoms;
  atoms.n_atoms = 2;
  atoms.n_owned = 2;
  atoms.coords = coords.data();
  std::vector<double> forces(6);
  klay::md::ResultsView results;
  results.forces = forces.data();
  model->compute(atoms, results);  // no ghosts: the total is the owned energy
  EXPECT_EQ(results.energy, 14.25);
  EXPECT_EQ(forces, (std::vector<double>{-2, -4, -6, -1, 0, 0}));
  atoms.n_owned = 1;
  try {
    model->compute(atoms, results);
    FAIL() << "a total over owned and ghost atoms was accepted";
  } catch (const klay::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot be split"), std::string::npos) << e.what();
  }
}

TEST(MdModel, PerAtomEnergyOutputIsSummedOverOwnedAtoms) {
  // The energy output is the per-atom tensor itself (as in KLay's new_model example).
  const std::string yaml = harmonic_yaml(kCoordsOnly, "  total: {type: ArbitraryModule, config: {target: torch.mul}, "
                                                      "inputs: {0: atom_energy, 1: atom_energy}}\n");
  std::unique_ptr<MdModel> model;
  try {
    model = std::make_unique<MdModel>(klay::Model::load_string(yaml, "m.yaml", ""));
  } catch (const klay::Error& e) {
    if (not_implemented(e.what())) GTEST_SKIP() << e.what();
    FAIL() << e.what();
  }
  // E = sum over owned atoms of |x|^4.
  const std::vector<double> coords{1, 1, 0, 2, 0, 0, 5, 5, 5};
  klay::md::AtomsView atoms;
  atoms.n_atoms = 3;
  atoms.n_owned = 2;
  atoms.coords = coords.data();
  std::vector<double> forces(9), per_atom(3);
  klay::md::ResultsView results;
  results.forces = forces.data();
  results.per_atom_energy = per_atom.data();
  model->compute(atoms, results);
  EXPECT_EQ(results.energy, 4.0 + 16.0);
  EXPECT_EQ(per_atom, (std::vector<double>{4, 16, 0}));
  // dE/dx = 4 |x|^2 x
  EXPECT_EQ(forces, (std::vector<double>{-8, -8, 0, -32, 0, 0, 0, 0, 0}));
}

TEST(MdModel, StagesWiredBackwardsAreRefused) {
  // The staged case with conv1 on G_0 and conv2 on G_1: wrong for every owned atom.
  std::string yaml = read_file(kConformance + "/staged_nequip_staged2_si8/model.yaml");
  const std::string conv1 = "      edge_index: model_inputs.edge_index1\n";
  const std::string conv2 = "      edge_index: model_inputs.edge_index0\n";
  const size_t first = yaml.find(conv1, yaml.find("  conv1:")), second = yaml.find(conv2, yaml.find("  conv2:"));
  ASSERT_NE(first, std::string::npos);
  ASSERT_NE(second, std::string::npos);
  ASSERT_LT(first, second);
  yaml.replace(second, conv2.size(), conv1);
  yaml.replace(first, conv1.size(), conv2);
  const std::string e = md_error(yaml);
  if (not_implemented(e)) GTEST_SKIP() << e;
  EXPECT_NE(e.find("layer 'conv1' is message-passing stage 1 of 2 but runs on 'edge_index0' = G_0; it needs G_1"),
            std::string::npos)
      << e;
}
