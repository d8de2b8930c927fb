// The `klay` executable end to end: `klay run` on a conformance case (outputs and input_grads
// against Python KLay), `klay layers`, and command dispatch.
#include <gtest/gtest.h>


#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "run_command.hpp"
#include "conformance_case.hpp"
#include "runtime/json.hpp"

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

TEST(KlayRun, ErrorsNameTheProblem) {
  Result r = run_klay("run " + kCase + "/model.yaml " + kCase + "/weights.pth /nonexistent.json");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("/nonexistent.json: cannot open file"), std::string::npos) << r.output;
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

TEST(Klay, UnknownCommandSuggestsTheClosest) {
  const Result r = run_klay("rnu");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("did you mean 'run'"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace klay::testing
