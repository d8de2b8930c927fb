// `klay bench speed`'s LAMMPS harness (src/bench_speed) on hand-written inputs: the run plan, the
// LAMMPS input of a run, what is read from a log in the format LAMMPS and the pair style print,
// and the reason given for a failed run. The end-to-end runs are in test_bench_cli.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bench_speed/speed_harness.hpp"
#include "bench_speed/speed_summary.hpp"

namespace {

// Qualified: inside a TEST body, Setup and Run would name gtest's own members.
namespace speed = klay::bench_speed;

TEST(SpeedHarness, PlanPutsEachBaselineBeforeTheModelRunsItIsComparedWith) {
  speed::Setup setup;
  setup.cells = {2, 3};
  setup.ranks = {1, 2};
  setup.dtypes = {"float64", "float32"};
  setup.compare_largest = true;
  setup.baseline = {"pair_style sw", "pair_coeff * * Si.sw Si"};
  const std::vector<speed::Run> runs = speed::planned_runs(setup);
  ASSERT_EQ(runs.size(), 2u * 2u * (1u + 2u * 2u));
  EXPECT_EQ(runs[0].series(), "baseline np1");
  EXPECT_EQ(runs[0].atoms(), 64);
  EXPECT_EQ(runs[1].series(), "klay staged float64 np1");
  EXPECT_EQ(runs[2].series(), "klay largest float64 np1");
  EXPECT_EQ(runs[3].series(), "klay staged float32 np1");
  EXPECT_EQ(runs[5].series(), "baseline np2");
  EXPECT_EQ(runs.back().series(), "klay largest float32 np2");
  EXPECT_EQ(runs.back().atoms(), 216);
}

TEST(SpeedHarness, InputRunsTheModelWithItsSettingsAfterTheWarmUp) {
  speed::Setup setup;
  setup.yaml = "model.yaml";
  setup.weights = "model.pth";
  setup.element = "Si";
  setup.threads = 2;
  setup.warmup = 3;
  setup.steps = 7;
  const std::string input = speed::lammps_input(setup, speed::Run{speed::RunKind::Largest, "float32", 1, 4});
  EXPECT_NE(input.find("region box block 0 4 0 4 0 4\n"), std::string::npos) << input;
  EXPECT_NE(input.find("pair_style klay dtype float32 threads 2 graphs largest\n"), std::string::npos) << input;
  EXPECT_NE(input.find("pair_coeff * * model.yaml model.pth Si\n"), std::string::npos) << input;
  EXPECT_LT(input.find("run 3\n"), input.find("run 7\n")) << input;

  setup.warmup = 0;
  setup.baseline = {"pair_style sw", "pair_coeff * * Si.sw Si"};
  const std::string baseline = speed::lammps_input(setup, speed::Run{speed::RunKind::Baseline, "", 1, 4});
  EXPECT_NE(baseline.find("pair_style sw\npair_coeff * * Si.sw Si\n"), std::string::npos) << baseline;
  EXPECT_EQ(baseline.find("pair_style klay"), std::string::npos) << baseline;
  EXPECT_EQ(baseline.find("run 3\n"), std::string::npos) << baseline;
}

// Open MPI binds a rank to one core when it starts one or two ranks, so a rank's second thread
// would share the first one's core and 2 threads ran slower than 1 (issue #14's threads row).
TEST(SpeedHarness, RanksWithSeveralThreadsAreNotBoundToOneCore) {
  speed::Setup setup;
  setup.lmp = "lmp";
  const speed::Run run{speed::RunKind::Staged, "float64", 1, 4};
  const auto has_bind_to_none = [](const std::vector<std::string>& args) {
    for (size_t i = 0; i + 1 < args.size(); ++i)
      if (args[i] == "--bind-to" && args[i + 1] == "none") return true;
    return false;
  };
  const std::vector<std::string> one_thread = speed::mpirun_command(setup, run, "run1.in", "run1.log");
  EXPECT_FALSE(has_bind_to_none(one_thread));
  setup.threads = 2;
  const std::vector<std::string> two_threads = speed::mpirun_command(setup, run, "run1.in", "run1.log");
  EXPECT_TRUE(has_bind_to_none(two_threads));
  const std::vector<std::string> tail{"-np", "1", "-x", "OMP_NUM_THREADS", "lmp", "-in", "run1.in", "-log", "run1.log"};
  ASSERT_GE(two_threads.size(), tail.size());
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), two_threads.end() - tail.size()));
  EXPECT_EQ(two_threads.front(), "mpirun");
}

// Two runs (warm-up, then timed) as LAMMPS and the pair style log them: the timed run's numbers
// are the last ones.
const char* const kLog =
    "Per MPI rank memory allocation (min/avg/max) = 3.1 | 3.1 | 3.2 Mbytes\n"
    "Loop time of 0.5 on 2 procs for 2 steps with 512 atoms\n"
    "\n"
    "Pair style klay timing (2 force evaluations, average over 2 ranks):\n"
    "  staged graphs            0.1000 s  20.00%\n"
    "  forward                  0.2000 s  40.00%\n"
    "  backward                 0.1500 s  30.00%\n"
    "  LAMMPS (rest)            0.0500 s  10.00%\n"
    "  peak memory per rank      100.0 MiB max, 90.0 MiB min\n"
    "Per MPI rank memory allocation (min/avg/max) = 4.5 | 4.6 | 4.75 Mbytes\n"
    "Loop time of 2.5 on 2 procs for 10 steps with 512 atoms\n"
    "\n"
    "Pair style klay timing (10 force evaluations, average over 2 ranks):\n"
    "  staged graphs            0.2500 s  10.00%\n"
    "  forward                  1.2500 s  50.00%\n"
    "  backward                 0.7500 s  30.00%\n"
    "  LAMMPS (rest)            0.2500 s  10.00%\n"
    "  peak memory per rank      120.5 MiB max, 110.0 MiB min\n"
    "Total wall time: 0:00:03\n";

TEST(SpeedHarness, LogGivesTheTimedRunsLoopTimeMemoryAndBreakdown) {
  speed::Measurement m;
  m.run = speed::Run{speed::RunKind::Staged, "float64", 2, 4};
  speed::parse_log(kLog, m);
  EXPECT_EQ(m.steps, 10);
  EXPECT_DOUBLE_EQ(m.loop_seconds, 2.5);
  EXPECT_DOUBLE_EQ(m.ms_per_step(), 250.0);
  EXPECT_DOUBLE_EQ(m.atom_steps_per_second(), 512 * 10 / 2.5);
  ASSERT_TRUE(m.lammps_mib.has_value());
  EXPECT_DOUBLE_EQ(*m.lammps_mib, 4.75);
  ASSERT_TRUE(m.peak_mib_max.has_value() && m.peak_mib_min.has_value());
  EXPECT_DOUBLE_EQ(*m.peak_mib_max, 120.5);
  EXPECT_DOUBLE_EQ(*m.peak_mib_min, 110.0);
  ASSERT_EQ(m.breakdown.size(), 4u);
  EXPECT_EQ(m.breakdown[0].label, "staged graphs");
  EXPECT_DOUBLE_EQ(m.breakdown[1].seconds, 1.25);
  EXPECT_DOUBLE_EQ(m.breakdown[1].percent, 50.0);
  EXPECT_EQ(m.breakdown[3].label, "LAMMPS (rest)");
}

TEST(SpeedHarness, LogOfABaselineHasNoBreakdown) {
  speed::Measurement m;
  m.run = speed::Run{speed::RunKind::Baseline, "", 1, 4};
  speed::parse_log("Loop time of 0.02 on 1 procs for 20 steps with 512 atoms\n", m);
  EXPECT_EQ(m.steps, 20);
  EXPECT_TRUE(m.breakdown.empty());
  EXPECT_FALSE(m.peak_mib_max.has_value());
  EXPECT_FALSE(m.lammps_mib.has_value());
}

TEST(SpeedHarness, FailureReasonIsTheFirstErrorLineElseTheLastLines) {
  EXPECT_EQ(speed::failure_reason("LAMMPS (4 Feb 2025)\nERROR: first (src/a.cpp:1)\nERROR: second\n"),
            "ERROR: first (src/a.cpp:1)");
  const std::string reason = speed::failure_reason("1\n2\n3\n4\n5\n6\n7\n");
  EXPECT_NE(reason.find("without an ERROR line"), std::string::npos) << reason;
  EXPECT_NE(reason.find("\n  3\n  4\n  5\n  6\n  7"), std::string::npos) << reason;
  EXPECT_EQ(reason.find("  2\n"), std::string::npos) << reason;
}

TEST(SpeedSummary, RatiosCompareRunsOfTheSameSizeAndRanks) {
  std::vector<speed::Measurement> all(3);
  all[0].run = speed::Run{speed::RunKind::Baseline, "", 1, 4};
  all[1].run = speed::Run{speed::RunKind::Staged, "float64", 1, 4};
  all[2].run = speed::Run{speed::RunKind::Largest, "float64", 1, 4};
  const double seconds[3] = {0.1, 5.0, 7.5};
  for (int k = 0; k < 3; ++k) {
    all[k].ok = true;
    all[k].steps = 10;
    all[k].loop_seconds = seconds[k];
  }
  EXPECT_FALSE(speed::ratio_to_baseline(all, all[0]).has_value());
  EXPECT_DOUBLE_EQ(*speed::ratio_to_baseline(all, all[1]), 50.0);
  EXPECT_DOUBLE_EQ(*speed::ratio_to_staged(all, all[2]), 1.5);
  EXPECT_FALSE(speed::ratio_to_staged(all, all[1]).has_value());
  all[0].run.ranks = 2;  // no baseline at 1 rank any more
  EXPECT_FALSE(speed::ratio_to_baseline(all, all[1]).has_value());
}

}  // namespace
