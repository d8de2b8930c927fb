// `klay fit` end to end: options, the per-epoch lines when stdout is not a terminal, the best
// weights and checkpoints it writes, and Ctrl-C (SIGINT) still leaving the best weights.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "md/md_model.hpp"
#include "runtime/model.hpp"
#include "soft_sphere_data.hpp"

namespace fs = std::filesystem;

namespace {

const std::string kCli = KLAY_CLI;
const std::string kModel = std::string(KLAY_TEST_SOURCE_DIR) + "/learnable_soft_sphere.yaml";
const fs::path kOutput = fs::path(KLAY_TEST_OUTPUT_DIR) / "cli";

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Exit status of `command` run by bash, stdout and stderr into `log`.
int run(const std::string& command, const fs::path& log) {
  const std::string line = "bash -c '" + command + "' > " + log.string() + " 2>&1";
  const int status = std::system(line.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Each test writes its own copy: ctest runs the tests as processes side by side, and one writing the
// file while another's `klay fit` reads it made that fit fail now and then.
fs::path data_file(const std::string& test) {
  fs::create_directories(kOutput);
  const fs::path data = kOutput / ("soft_sphere_" + test + ".xyz");
  soft_sphere::write_extended_xyz(data.string(), soft_sphere::soft_sphere_frames(10, 23));
  return data;
}

}  // namespace

TEST(CmdFit, TrainsWritesBestWeightsAndCheckpoints) {
  const fs::path data = data_file("fitted"), out = kOutput / "fitted.pth", log = kOutput / "fit.log";
  for (const char* name : {"fitted.pth", "fitted.epoch2.pth", "fitted.epoch4.pth"}) fs::remove(kOutput / name);
  ASSERT_EQ(run(kCli + " fit " + kModel + " " + data.string() + " --out " + out.string() +
                    " --epochs 5 --lr 0.05 --batch-size 2 --threads 1 --checkpoint-every 2",
                log),
            0)
      << read_text(log);
  const std::string text = read_text(log);
  EXPECT_EQ(text.find('\r'), std::string::npos) << "progress bar drawn without a terminal";
  EXPECT_NE(text.find("# 10 frames: 9 training, 1 validation; 1 trainable parameters; float64, 1 thread(s)"),
            std::string::npos)
      << text;
  for (const char* epoch : {"\n     1 ", "\n     5 "}) EXPECT_NE(text.find(epoch), std::string::npos) << text;
  EXPECT_TRUE(fs::exists(kOutput / "fitted.epoch2.pth"));
  EXPECT_TRUE(fs::exists(kOutput / "fitted.epoch4.pth"));
  EXPECT_FALSE(fs::exists(kOutput / "fitted.epoch5.pth"));
  // The written weights load strictly into the model.
  EXPECT_NO_THROW(klay::md::MdModel::load(kModel, out.string()));
}

TEST(CmdFit, BadArgumentsAreReportedWithUsage) {
  const fs::path log = kOutput / "bad.log";
  fs::create_directories(kOutput);
  EXPECT_EQ(run(kCli + " fit " + kModel + " data.xyz --epoch 3", log), 2);
  EXPECT_NE(read_text(log).find("unknown option '--epoch' (did you mean '--epochs'?)"), std::string::npos)
      << read_text(log);
  EXPECT_EQ(run(kCli + " fit " + kModel + " data.xyz --dtype half", log), 2);
  EXPECT_NE(read_text(log).find("--dtype: 'half' is not float64 or float32"), std::string::npos) << read_text(log);
  EXPECT_EQ(run(kCli + " fit " + kModel + " " + (kOutput / "missing.xyz").string(), log), 1);
  EXPECT_NE(read_text(log).find("missing.xyz"), std::string::npos) << read_text(log);
}

TEST(CmdFit, AnUnwritableOutIsReportedBeforeTraining) {
  const fs::path log = kOutput / "unwritable.log";
  const fs::path data = data_file("unwritable");
  EXPECT_EQ(run(kCli + " fit " + kModel + " " + data.string() + " --epochs 1 --out /nonexistent/x.pth", log), 1);
  const std::string output = read_text(log);
  EXPECT_NE(output.find("/nonexistent/x.pth: cannot write the weights: No such file or directory"), std::string::npos)
      << output;
  EXPECT_EQ(output.find("# 10 frames"), std::string::npos) << "training started: " << output;
}

// A learning rate of 1e300 sends the parameter, and with it the loss, to infinity after one step:
// the fit stops there, naming the epoch, the step and the frames, instead of training on NaN.
TEST(CmdFit, ANonFiniteLossStopsTheFitNamingWhere) {
  const fs::path data = data_file("non_finite"), log = kOutput / "non_finite.log";
  EXPECT_EQ(run(kCli + " fit " + kModel + " " + data.string() + " --epochs 3 --lr 1e300 --threads 1 --out " +
                    (kOutput / "non_finite.pth").string(),
                log),
            1);
  const std::string output = read_text(log);
  EXPECT_NE(output.find("klay fit: epoch 1, step 2: the loss is inf on frames"), std::string::npos) << output;
  EXPECT_NE(output.find("non-finite energies or forces"), std::string::npos) << output;
}

TEST(CmdFit, InterruptStopsAfterTheStepAndKeepsTheBestWeights) {
  const fs::path data = data_file("interrupted"), out = kOutput / "interrupted.pth", log = kOutput / "interrupted.log";
  fs::remove(out);
  // The previous run's output must be gone before the loop below reads it: bash truncates it only
  // in the forked child, and a grep that wins that race sees the old epoch line and sends Ctrl-C
  // before klay has installed its handler, while the child still ignores SIGINT as a background job;
  // the fit then ran all 10000 epochs.
  fs::remove(log.string() + ".fit");
  // Wait for the first epoch line, then Ctrl-C; 10000 epochs would take far longer than the test.
  const std::string command = kCli + " fit " + kModel + " " + data.string() + " --out " + out.string() +
                              " --epochs 10000 --threads 1 > " + log.string() + ".fit 2>&1 & pid=$!; " +
                              "for i in $(seq 600); do grep -q \"^ *1 \" " + log.string() +
                              ".fit && break; sleep 0.1; done; kill -INT $pid; wait $pid; status=$?; cat " +
                              log.string() + ".fit; exit $status";
  ASSERT_EQ(run(command, log), 0) << read_text(log);
  const std::string text = read_text(log);
  EXPECT_NE(text.find("interrupted, stopping after this step"), std::string::npos) << text;
  EXPECT_NE(text.find("best validation loss at epoch"), std::string::npos) << text;
  EXPECT_NO_THROW(klay::md::MdModel::load(kModel, out.string()));
}
