// The `klay` executable end to end: `klay run` on a conformance case (outputs and input_grads
// against Python KLay), `klay layers`, and command dispatch.
#include <gtest/gtest.h>


#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "run_command.hpp"
#include "conformance_case.hpp"
#include "base/json.hpp"

namespace klay::testing {
namespace {

using Result = klay_test::CommandResult;

Result run_klay(const std::string& arguments) {
  return klay_test::run_command(std::string(KLAY_EXECUTABLE) + " " + arguments);
}

const std::string kCase = conformance_dir() + "/model_arbitrary_and_alias";

void expect_matches_reference(const json::Value& result) {
  const json::Value reference = json::parse_file(kCase + "/reference.json");
  const json::Value* outputs = result.find("outputs");
  ASSERT_NE(outputs, nullptr);
  ASSERT_EQ(outputs->members.size(), 1u);
  EXPECT_EQ(outputs->members[0].first, "preds");
  EXPECT_EQ(compare(json::to_tensor(outputs->members[0].second, "preds"),
                    json::to_tensor(*reference.find("outputs")->find("preds"), "reference preds"), "preds"),
            "");
  const json::Value* grads = result.find("input_grads");
  ASSERT_NE(grads, nullptr);
  ASSERT_NE(grads->find("x"), nullptr);
  EXPECT_EQ(compare(json::to_tensor(*grads->find("x"), "grad x"),
                    json::to_tensor(*reference.find("input_grads")->find("x"), "reference grad x"), "input_grads x"),
            "");
}

TEST(KlayRun, ArbitraryAndAliasMatchesPythonKLay) {
  const std::string out = (std::filesystem::temp_directory_path() / "klay_test_run_out.json").string();
  const Result r = run_klay("run " + kCase + "/model.yaml " + kCase + "/weights.pth " + kCase +
                            "/reference.json --grads --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  expect_matches_reference(json::parse_file(out));
  std::filesystem::remove(out);
}

TEST(KlayRun, WritesToStdoutWithoutOut) {
  const Result r = run_klay("run " + kCase + "/model.yaml " + kCase + "/weights.pth " + kCase + "/reference.json --grads");
  ASSERT_EQ(r.status, 0) << r.output;
  expect_matches_reference(json::parse(r.output, "stdout"));
}

TEST(KlayRun, WeightsAreRequiredUnlessNoWeightsIsExplicit) {
  Result r = run_klay("run " + kCase + "/model.yaml " + kCase + "/reference.json");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("usage: klay run"), std::string::npos) << r.output;
  r = run_klay("run " + kCase + "/model.yaml --no-weights " + kCase + "/reference.json");
  EXPECT_EQ(r.status, 0) << r.output;
  const json::Value result = json::parse(r.output, "stdout");
  ASSERT_NE(result.find("outputs"), nullptr);
  EXPECT_EQ(result.find("input_grads"), nullptr);
}

// AutogradForces differentiates its pos input: `klay run` tracks it without --grads and gives
// Python KLay's forces.
TEST(KlayRun, TracksWhatAutogradForcesDifferentiatesWithoutGrads) {
  const std::string dir = conformance_dir() + "/layer_AutogradForces_0";
  const Result r = run_klay("run " + dir + "/model.yaml " + dir + "/weights.pth " + dir + "/reference.json");
  ASSERT_EQ(r.status, 0) << r.output;
  const json::Value result = json::parse(r.output, "stdout");
  const json::Value reference = json::parse_file(dir + "/reference.json");
  EXPECT_EQ(compare(json::to_tensor(*result.find("outputs")->find("forces"), "forces"),
                    json::to_tensor(*reference.find("outputs")->find("forces"), "reference forces"), "forces"),
            "");
  EXPECT_EQ(result.find("input_grads"), nullptr);
}

TEST(KlayRun, ErrorsNameTheProblem) {
  Result r = run_klay("run " + kCase + "/model.yaml " + kCase + "/weights.pth /nonexistent.json");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("/nonexistent.json: cannot open JSON file"), std::string::npos) << r.output;
  // Weights of another model: strict key check.
  r = run_klay("run " + kCase + "/model.yaml " + conformance_dir() + "/layer_ArbitraryModule_0/weights.pth " + kCase +
               "/reference.json");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("dense.module.weight"), std::string::npos) << r.output;
}

TEST(KlayLayers, ListsTheRegistryWithPortsConfigAndImplementation) {
  Result r = run_klay("layers");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("ArbitraryModule"), std::string::npos);
  EXPECT_NE(r.output.find("SphericalHarmonicEdgeAttrs"), std::string::npos);
  EXPECT_NE(r.output.find("inputs:  pos, edge_index, shift"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("r_max (required), num_radial_basis=8"), std::string::npos) << r.output;
  r = run_klay("layers --type arbitrary");
  ASSERT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("ArbitraryModule                    ARBITRARY    implemented"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("ConvNetLayer"), std::string::npos);
  r = run_klay("layers --type nonsense");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("unknown category 'NONSENSE'"), std::string::npos) << r.output;
}

// Every file argument of every subcommand (`layers` takes none), replaced in turn by a
// directory, an empty file and a missing file, gives exit status 1 and one line that names the
// path and what is wrong with it, never an abort.
TEST(Klay, EverySubcommandReportsADirectoryAnEmptyFileAndAMissingFile) {
  const std::filesystem::path scratch = std::filesystem::temp_directory_path() / "klay_test_bad_paths";
  std::filesystem::create_directories(scratch / "a_directory");
  const std::string directory = (scratch / "a_directory").string(), empty = (scratch / "empty").string(),
                    missing = (scratch / "missing").string(), structure = (scratch / "two_atoms.xyz").string();
  std::ofstream(empty).close();
  std::ofstream(structure) << "2\nLattice=\"8 0 0 0 8 0 0 0 8\" Properties=species:S:1:pos:R:3:forces:R:3 energy=0.1 "
                              "pbc=\"T T T\"\nSi 0 0 0 0 0 0\nSi 2 0 0 0 0 0\n";
  const std::string md_model = std::string(KLAY_EXAMPLES_DIR) + "/soft_sphere/model.yaml";
  const std::string md_weights = std::string(KLAY_EXAMPLES_DIR) + "/soft_sphere/no_parameters.safetensors";
  const std::string out = (scratch / "out.pth").string();
  // Each command with its file arguments; {n} is the n-th file argument.
  struct Command {
    std::string pattern;
    std::vector<std::string> files;
  };
  const std::vector<Command> commands = {
      {"validate {0}", {md_model}},
      {"weights {0}", {md_weights}},
      {"run {0} {1} {2}", {kCase + "/model.yaml", kCase + "/weights.pth", kCase + "/reference.json"}},
      {"eval {0} {1} {2}", {md_model, md_weights, structure}},
      {"bench accuracy {0} {1} {2}", {md_model, md_weights, structure}},
      {"bench speed {0} {1} --elements Si", {md_model, md_weights}},
      {"fit {0} {1} --epochs 1 --out " + out, {md_model, structure}},
  };
  struct Bad {
    std::string path, reason;
  };
  for (const Command& command : commands) {
    for (size_t replaced = 0; replaced < command.files.size(); ++replaced) {
      const bool yaml = command.files[replaced] == md_model || command.files[replaced] == kCase + "/model.yaml";
      for (const Bad& bad : {Bad{directory, "is a directory"}, Bad{missing, "No such file or directory"},
                             Bad{empty, yaml ? "missing top-level section 'model_inputs'" : "empty file"}}) {
        std::string arguments = command.pattern;
        for (size_t k = 0; k < command.files.size(); ++k) {
          const std::string slot = "{" + std::to_string(k) + "}";
          arguments.replace(arguments.find(slot), slot.size(), k == replaced ? bad.path : command.files[k]);
        }
        SCOPED_TRACE("klay " + arguments);
        const Result r = run_klay(arguments);
        EXPECT_EQ(r.status, 1) << r.output;
        std::istringstream lines(r.output);
        bool named = false;
        for (std::string line; std::getline(lines, line);)
          named = named || (line.find(bad.path) != std::string::npos && line.find(bad.reason) != std::string::npos);
        EXPECT_TRUE(named) << r.output;
      }
    }
  }
  EXPECT_FALSE(std::filesystem::exists(out));
  std::filesystem::remove_all(scratch);
}

TEST(Klay, UnknownCommandSuggestsTheClosest) {
  const Result r = run_klay("rnu");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("did you mean 'run'"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace klay::testing
