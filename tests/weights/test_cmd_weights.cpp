// `klay weights FILE` on a conformance file: format, one line per tensor, totals; errors and
// usage give non-zero exit codes.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "cli/commands.hpp"
#include "weights_testing.hpp"

namespace {

struct CliRun {
  int status;
  std::string out, err;
};

// Runs cmd_weights with stdout and stderr sent to files.
CliRun run_weights(std::vector<std::string> args) {
  klay_test::ScratchDir scratch;
  const std::string out_path = scratch.file("out").string(), err_path = scratch.file("err").string();
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  std::fflush(stdout);
  std::fflush(stderr);
  const int saved_out = dup(1), saved_err = dup(2);
  FILE* out = std::fopen(out_path.c_str(), "w");
  FILE* err = std::fopen(err_path.c_str(), "w");
  dup2(fileno(out), 1);
  dup2(fileno(err), 2);
  CliRun run;
  run.status = cmd_weights(int(argv.size()), argv.data());
  std::fflush(stdout);
  std::fflush(stderr);
  dup2(saved_out, 1);
  dup2(saved_err, 2);
  close(saved_out);
  close(saved_err);
  std::fclose(out);
  std::fclose(err);
  const auto slurp = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  run.out = slurp(out_path);
  run.err = slurp(err_path);
  return run;
}

TEST(KlayWeights, ListsEveryTensorWithASummary) {
  const std::string file = (klay_test::conformance_dir() / "layer_AtomwiseLinear_1/weights.pth").string();
  const CliRun run = run_weights({"weights", file});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_NE(run.out.find("format: torch.save (zip, pickle protocol 2)"), std::string::npos) << run.out;
  // Python: w = torch.load(file)["layer.linear.weight"]; "%.6g" % w.min(), w.max(), w.mean().
  EXPECT_NE(run.out.find("layer.linear.weight       float64   [8]           8  min -1.73812  max 0.971944  mean -0.213887\n"),
            std::string::npos) << run.out;
  EXPECT_NE(run.out.find("layer.linear.bias         float64   [0]           0  (empty)\n"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("layer.linear.output_mask  float64   [5]           5  1 1 1 1 1\n"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("3 tensors, 13 values in total (5 of them in e3nn constants and output masks)"), std::string::npos)
      << run.out;
}

TEST(KlayWeights, ReportsErrorsAndUsage) {
  const CliRun missing = run_weights({"weights", "/nonexistent/w.pth"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("klay weights: error: /nonexistent/w.pth: cannot open weights file"), std::string::npos) << missing.err;
  const CliRun usage = run_weights({"weights"});
  EXPECT_EQ(usage.status, 2);
  EXPECT_NE(usage.err.find("usage: klay weights FILE"), std::string::npos);
}

}  // namespace
