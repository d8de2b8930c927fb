// `klay validate` end to end (through klay_validate_driver, which runs the same cmd_validate).

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "run_command.hpp"
#include "builder_fixture.hpp"

namespace {

using CliRun = klay_test::CommandResult;

CliRun run_validate(const std::string& args) {
  return klay_test::run_command(std::string(KLAY_VALIDATE_DRIVER) + " " + args);
}

const std::string kShared = KLAY_SHARED_DIR;
const std::string kBad = KLAY_BAD_YAML_DIR;

}  // namespace

TEST(ValidateCli, PrintsThePlanOfAStagedModel) {
  CliRun r = run_validate(kShared + "/conformance/staged_nequip_staged2_si8/model.yaml");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("inputs (5): species, coords, edge_index0, edge_index1, contributions"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("edge_feature0            alias of edge_feature1 (SphericalHarmonicEdgeAttrs)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("conv2                    ConvNetLayer  [stage, depth 2]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("outputs (1): energy <- total_energy"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("message-passing stages (2): conv1 (edge_index from edge_index1, depth 1), conv2 (edge_index "
                          "from edge_index0, depth 2)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("\ndepth: 2\n"), std::string::npos) << r.output;
}

TEST(ValidateCli, ErrorsExitNonZeroWithPositions) {
  std::string file = kShared + "/klay_examples/mace_model.yaml";
  CliRun r = run_validate(file);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find(file + ":33:7: error: layer 'radial_basis_func' (RadialBasisEdgeEncoding) has no input port "
                                 "'edge_length'; did you mean 'edge_lengths'?"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("valid KLay model"), std::string::npos);
}

TEST(ValidateCli, StrictAndAllowDanglingFlags) {
  std::string file = kBad + "/dangling.yaml";
  CliRun plain = run_validate(file);
  EXPECT_EQ(plain.status, 0) << plain.output;
  EXPECT_NE(plain.output.find(file + ":9:3: warning: layer 'forgotten' is dangling"), std::string::npos);
  CliRun strict = run_validate(file + " --strict");
  EXPECT_EQ(strict.status, 1) << strict.output;
  EXPECT_NE(strict.output.find(file + ":9:3: error: layer 'forgotten' is dangling"), std::string::npos);
  CliRun allowed = run_validate(file + " --allow-dangling");
  EXPECT_EQ(allowed.status, 0);
  EXPECT_EQ(allowed.output.find("is dangling"), std::string::npos) << allowed.output;
}

TEST(ValidateCli, WritesGraphvizAndRejectsBadArguments) {
  std::filesystem::path dot = std::filesystem::temp_directory_path() / "klay_validate_cli_test.dot";
  CliRun r = run_validate(kShared + "/klay_examples/arbitrary_and_alias.yaml --dot " + dot.string());
  EXPECT_EQ(r.status, 0) << r.output;
  std::ifstream in(dot);
  std::stringstream text;
  text << in.rdbuf();
  std::filesystem::remove(dot);
  EXPECT_NE(text.str().find("n2 -> n0 [style=dashed"), std::string::npos) << text.str();
  EXPECT_EQ(run_validate("").status, 2);
  EXPECT_EQ(run_validate("a.yaml --bogus").status, 2);
  CliRun missing = run_validate("/nonexistent.yaml");
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.output.find("/nonexistent.yaml: error: cannot open"), std::string::npos) << missing.output;
}
