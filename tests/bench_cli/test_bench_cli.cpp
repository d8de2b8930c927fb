// `klay bench accuracy` and `klay bench speed` end to end, and their statistics (src/analysis).
//
// Accuracy runs examples/soft_sphere/model.yaml, a closed-form pair potential: every directed
// edge within r_c = 3.5 Å adds p (r_c^2 - r^2)^2 (p = 0.05) to the energy, so a pair at distance r
// has E = 2 p (r_c^2 - r^2)^2 and a repulsive force of magnitude 8 p r (r_c^2 - r^2); at r = 2 Å
// that is E = 6.80625 eV and |F| = 6.6 eV/Å, and at r = 3 Å E = 1.05625 eV. The data files label
// these structures with known offsets, so every RMSE / MAE below is worked out by hand.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "run_command.hpp"
#include "analysis/error_stats.hpp"
#include "base/error.hpp"
#include "base/json.hpp"

namespace {

namespace fs = std::filesystem;
using klay::json::Value;

const std::string kModel = std::string(KLAY_SOURCE_DIR) + "/examples/soft_sphere/model.yaml";
const std::string kWeights = std::string(KLAY_SOURCE_DIR) + "/examples/soft_sphere/no_parameters.safetensors";

using Result = klay_test::CommandResult;
using klay_test::run_command;

Result run_klay(const std::string& arguments) { return run_command(std::string(KLAY_EXECUTABLE) + " " + arguments); }

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "klay_bench_test_XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name, const std::string& text = "") const {
    const std::string p = path_ + "/" + name;
    if (!text.empty()) std::ofstream(p) << text;
    return p;
  }

 private:
  std::string path_;
};

double number(const Value& object, const std::string& key) {
  const Value* v = object.find(key);
  if (!v || !v->is_number()) throw klay::Error("no number '" + key + "'");
  return v->as_double();
}

constexpr double kTight = 1e-12;

// ---- statistics ----

TEST(ErrorStats, RmseMaeAndMaxOfHandPickedErrors) {
  klay::analysis::ErrorStats stats;
  stats.add(4.0, 1.0);   // +3
  stats.add(-1.0, 3.0);  // -4
  EXPECT_EQ(stats.count(), 2);
  EXPECT_NEAR(stats.rmse(), std::sqrt(12.5), kTight);
  EXPECT_NEAR(stats.mae(), 3.5, kTight);
  EXPECT_NEAR(stats.max_abs(), 4.0, kTight);
  klay::analysis::ErrorStats more;
  more.add(0.0, 0.0);
  more.merge(stats);
  EXPECT_EQ(more.count(), 3);
  EXPECT_NEAR(more.rmse(), std::sqrt(25.0 / 3.0), kTight);
  EXPECT_NEAR(more.mae(), 7.0 / 3.0, kTight);
}

TEST(FittedExponent, RecoversThePowerOfAPowerLaw) {
  const std::vector<double> sizes{512, 4096, 32768};
  std::vector<double> costs;
  for (const double n : sizes) costs.push_back(3e-3 * std::pow(n, 1.25));
  EXPECT_NEAR(klay::analysis::fitted_exponent(sizes, costs), 1.25, 1e-12);
  // Least squares through three points off a line: slope of (0,0),(1,1),(2,3) in log-log = 1.5
  const std::vector<double> x{1, std::exp(1.0), std::exp(2.0)}, y{1, std::exp(1.0), std::exp(3.0)};
  EXPECT_NEAR(klay::analysis::fitted_exponent(x, y), 1.5, 1e-12);
}

TEST(FittedExponent, RefusesDegenerateInput) {
  EXPECT_THROW(klay::analysis::fitted_exponent({512}, {1.0}), klay::Error);
  EXPECT_THROW(klay::analysis::fitted_exponent({512, 512}, {1.0, 2.0}), klay::Error);
  EXPECT_THROW(klay::analysis::fitted_exponent({512, 4096}, {1.0, 0.0}), klay::Error);
  EXPECT_THROW(klay::analysis::fitted_exponent({512, 4096}, {1.0}), klay::Error);
}

// ---- accuracy ----

// Frame 1 (line 1): Si-C pair at 2 Å; labels: E - 0.2, F_Si,x + 0.3, F_C,y + 0.1.
// Frame 2 (line 5): one Si (E = 0, F = 0); labels: E = 0.3, F_z = 0.4.
// Frame 3 (line 8): no labels.
// Frame 4 (line 12): Si pair at 3 Å, exact energy, no forces.
const char* kLabelledClusters =
    "2\n"
    "Properties=species:S:1:pos:R:3:forces:R:3 energy=6.60625 pbc=\"F F F\"\n"
    "Si 0 0 0 -6.3 0 0\n"
    "C  2 0 0  6.6 0.1 0\n"
    "1\n"
    "Properties=species:S:1:pos:R:3:forces:R:3 energy=0.3 pbc=\"F F F\"\n"
    "Si 0 0 0 0 0 0.4\n"
    "2\n"
    "Properties=species:S:1:pos:R:3 pbc=\"F F F\"\n"
    "Si 0 0 0\n"
    "Si 0 0 3\n"
    "2\n"
    "Properties=species:S:1:pos:R:3 energy=1.05625 pbc=\"F F F\"\n"
    "Si 0 0 0\n"
    "Si 0 0 3\n";

TEST(BenchAccuracy, GroupsByACommentKeyGiveTheirOwnKnownErrors) {
  // The frames of kLabelledClusters with config_type=a on frames 1 and 4 and =b on frame 2.
  std::string text = kLabelledClusters;
  auto tag = [&](const std::string& energy, const char* type) {
    const size_t at = text.find(energy);
    ASSERT_NE(at, std::string::npos);
    text.insert(at + energy.size(), std::string(" config_type=") + type);
  };
  tag("energy=6.60625", "a");
  tag("energy=0.3", "b");
  tag("energy=1.05625", "a");
  TempDir dir;
  const std::string data = dir.file("grouped.xyz", text), json = dir.file("out.json");
  const Result r = run_klay("bench accuracy " + kModel + " " + kWeights + " " + data + " --group config_type --json " + json);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("group"), std::string::npos) << r.output;
  const Value report = klay::json::parse_file(json);
  const Value& groups = *report.find("models")->items.at(0).find("groups");
  const Value& a = *groups.find("a");
  const Value& b = *groups.find("b");
  EXPECT_EQ(number(a, "frames"), 2);
  EXPECT_EQ(number(b, "frames"), 1);
  // a: energy errors +0.1 and 0; forces (-0.3, 0, 0), (0, -0.1, 0). b: energy -0.3; force (0, 0, -0.4).
  EXPECT_NEAR(number(*a.find("energy_per_atom"), "rmse"), std::sqrt(0.01 / 2), kTight);
  EXPECT_NEAR(number(*a.find("forces"), "rmse"), std::sqrt(0.1 / 6), kTight);
  EXPECT_NEAR(number(*b.find("energy_per_atom"), "rmse"), 0.3, kTight);
  EXPECT_NEAR(number(*b.find("forces"), "rmse"), std::sqrt(0.16 / 3), kTight);
  EXPECT_EQ(groups.find("(none)"), nullptr);
}

TEST(BenchAccuracy, KnownErrorsGiveKnownRmseAndMae) {
  TempDir dir;
  const std::string data = dir.file("clusters.xyz", kLabelledClusters), json = dir.file("out.json");
  const Result r = run_klay("bench accuracy " + kModel + " " + kWeights + " " + data + " --worst 2 --json " + json);
  ASSERT_EQ(r.status, 0) << r.output;
  const Value report = klay::json::parse_file(json);
  EXPECT_EQ(number(report, "n_frames"), 4);
  EXPECT_EQ(number(report, "frames_with_energy"), 3);
  EXPECT_EQ(number(report, "frames_with_forces"), 2);
  EXPECT_EQ(number(report, "frames_with_stress"), 0);
  EXPECT_EQ(number(report, "frames_without_labels"), 1);
  const Value& model = report.find("models")->items.at(0);

  // energy per atom errors: +0.2/2, -0.3/1, 0
  const Value& energy = *model.find("energy_per_atom");
  EXPECT_EQ(number(energy, "count"), 3);
  EXPECT_NEAR(number(energy, "rmse"), std::sqrt(0.1 / 3), kTight);
  EXPECT_NEAR(number(energy, "mae"), 0.4 / 3, kTight);
  EXPECT_NEAR(number(energy, "max"), 0.3, kTight);

  // force component errors: Si (-0.3, 0, 0), C (0, -0.1, 0), Si (0, 0, -0.4)
  const Value& forces = *model.find("forces");
  EXPECT_EQ(number(forces, "count"), 9);
  EXPECT_NEAR(number(forces, "rmse"), std::sqrt(0.26 / 9), kTight);
  EXPECT_NEAR(number(forces, "mae"), 0.8 / 9, kTight);
  EXPECT_NEAR(number(forces, "max"), 0.4, kTight);
  const Value& by_element = *model.find("forces_by_element");
  EXPECT_EQ(number(*by_element.find("Si"), "count"), 6);
  EXPECT_NEAR(number(*by_element.find("Si"), "rmse"), std::sqrt(0.25 / 6), kTight);
  EXPECT_NEAR(number(*by_element.find("Si"), "mae"), 0.7 / 6, kTight);
  EXPECT_EQ(number(*by_element.find("C"), "count"), 3);
  EXPECT_NEAR(number(*by_element.find("C"), "rmse"), std::sqrt(0.01 / 3), kTight);
  EXPECT_NEAR(number(*by_element.find("C"), "mae"), 0.1 / 3, kTight);
  EXPECT_EQ(model.find("stress")->kind, Value::Kind::Null);

  // worst by force RMSE: frame 2 (sqrt(0.16/3)) before frame 1 (sqrt(0.1/6)); --worst 2 keeps two
  const auto& worst = model.find("worst_frames")->items;
  ASSERT_EQ(worst.size(), 2u);
  EXPECT_EQ(number(worst[0], "frame"), 2);
  EXPECT_EQ(number(worst[0], "line"), 5);
  EXPECT_NEAR(number(worst[0], "force_rmse"), std::sqrt(0.16 / 3), kTight);
  EXPECT_NEAR(number(worst[0], "energy_error_per_atom"), -0.3, kTight);
  EXPECT_EQ(number(worst[1], "frame"), 1);
  EXPECT_NEAR(number(worst[1], "force_rmse"), std::sqrt(0.1 / 6), kTight);
  EXPECT_NEAR(number(worst[1], "energy_error_per_atom"), 0.1, kTight);

  // the terminal table in meV
  EXPECT_NE(r.output.find("energy/atom MAE"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("133.3333"), std::string::npos) << r.output;  // 0.4/3 eV = 133.3333 meV
  EXPECT_NE(r.output.find("force RMSE Si"), std::string::npos) << r.output;
}

TEST(BenchAccuracy, SeveralModelsGiveOneTableAndParityPlots) {
  TempDir dir;
  const std::string data = dir.file("clusters.xyz", kLabelledClusters), json = dir.file("out.json"),
                    png = dir.file("parity.png");
  const Result r = run_klay("bench accuracy " + kModel + " " + kWeights + " " + data + " --model " + kModel + " " +
                            kWeights + " --json " + json + " --plot " + png);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("model 2"), std::string::npos) << r.output;
  const Value report = klay::json::parse_file(json);
  const auto& models = report.find("models")->items;
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(number(*models[0].find("forces"), "rmse"), number(*models[1].find("forces"), "rmse"));
  std::ifstream image(png, std::ios::binary);
  char magic[8] = {};
  image.read(magic, 8);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG") << "no PNG written; output:\n" << r.output;
}

// A Si pair at 2 Å in a 10 Å cube (images out of range): the virial sum r·F is 2 Å x 6.6 eV/Å =
// 13.2 eV in xx only. Labelled 13.7 eV, the stress error -(13.2 - 13.7)/1000 Å^3 is +5e-4 eV/Å^3
// in one of the nine components. ASE's stress label is -virial/V: -0.0137 in Voigt xx.
std::string periodic_pair(const std::string& stress_label) {
  return "2\nLattice=\"10 0 0 0 10 0 0 0 10\" Properties=species:S:1:pos:R:3:forces:R:3 energy=6.80625 " +
         stress_label + " pbc=\"T T T\"\nSi 0 0 0 -6.6 0 0\nSi 2 0 0 6.6 0 0\n";
}

TEST(BenchAccuracy, StressFromVirialOrAseStressGivesTheSameKnownErrors) {
  TempDir dir;
  for (const std::string label :
       {"virial=\"13.7 0 0 0 0 0 0 0 0\"", "stress=\"-0.0137 0 0 0 0 0\"", "stress=\"-0.0137 0 0 0 0 0 0 0 0\""}) {
    const std::string data = dir.file("periodic.xyz", periodic_pair(label)), json = dir.file("out.json");
    const Result r = run_klay("bench accuracy " + kModel + " " + kWeights + " " + data + " --json " + json);
    ASSERT_EQ(r.status, 0) << label << "\n" << r.output;
    const Value report = klay::json::parse_file(json);
    EXPECT_EQ(number(report, "frames_with_stress"), 1) << label;
    const Value& model = report.find("models")->items.at(0);
    EXPECT_NEAR(number(*model.find("energy_per_atom"), "max"), 0.0, kTight) << label;
    EXPECT_NEAR(number(*model.find("forces"), "max"), 0.0, kTight) << label;
    const Value* stress = model.find("stress");
    ASSERT_TRUE(stress && stress->kind == Value::Kind::Object) << label << "\n" << r.output;
    EXPECT_EQ(number(*stress, "count"), 9) << label;
    EXPECT_NEAR(number(*stress, "max"), 5e-4, 1e-14) << label;
    EXPECT_NEAR(number(*stress, "rmse"), 5e-4 / 3, 1e-14) << label;
    EXPECT_NEAR(number(*stress, "mae"), 5e-4 / 9, 1e-14) << label;
  }
}

TEST(BenchAccuracy, FramesWithoutLabelsOrBadFilesAreClearErrors) {
  TempDir dir;
  const std::string unlabelled = dir.file("unlabelled.xyz", "2\npbc=\"F F F\"\nSi 0 0 0\nSi 2 0 0\n");
  Result r = run_klay("bench accuracy " + kModel + " " + kWeights + " " + unlabelled);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("no frame has an energy or forces"), std::string::npos) << r.output;

  const std::string truncated = dir.file("truncated.xyz", "3\nenergy=1.0\nSi 0 0 0\nSi 2 0 0\n");
  r = run_klay("bench accuracy " + kModel + " " + kWeights + " " + truncated);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(truncated + ":"), std::string::npos) << r.output;

  const std::string both = dir.file("both.xyz", periodic_pair("virial=\"1 0 0 0 1 0 0 0 1\" stress=\"1 1 1 0 0 0\""));
  r = run_klay("bench accuracy " + kModel + " " + kWeights + " " + both);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(both + ":2:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("both virial= and stress="), std::string::npos) << r.output;

  r = run_klay("bench accuracy " + kModel + " " + kWeights + " " + dir.file("missing.xyz"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("missing.xyz"), std::string::npos) << r.output;

  r = run_klay("bench accuracy " + kModel + " " + kWeights);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("usage: klay bench accuracy"), std::string::npos) << r.output;

  r = run_klay("bench accuracy " + kModel + " " + kWeights + " " + unlabelled + " --wrost 3");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("unknown option '--wrost'"), std::string::npos) << r.output;

  r = run_klay("bench precision");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("unknown benchmark 'precision'"), std::string::npos) << r.output;
}

// ---- speed ----

bool have_lammps() { return std::string(KLAY_BENCH_LMP).size() > 0; }

std::string speed_command(const std::string& lmp, const std::string& json, const std::string& extra) {
  return std::string(KLAY_EXECUTABLE) + " bench speed " + kModel + " " + kWeights +
         " --elements Si --steps 3 --warmup 1 --lmp " + lmp + " --json " + json + " " + extra;
}

TEST(BenchSpeed, ShortRunWithBaselineAndLargestGraph) {
  if (!have_lammps()) GTEST_SKIP() << "needs -DKLAY_WITH_LAMMPS=ON";
  TempDir dir;
  const std::string json = dir.file("speed.json"), png = dir.file("speed.png");
  const Result r = run_command(speed_command(KLAY_BENCH_LMP, json,
                                           "--sizes 64,216 --ranks 1,2 --compare-largest-graph --plot " + png +
                                               " --baseline 'pair_style sw; pair_coeff * * " KLAY_BENCH_SW_POTENTIAL
                                               " Si'"));
  ASSERT_EQ(r.status, 0) << r.output;
  const Value report = klay::json::parse_file(json);
  EXPECT_EQ(report.find("state")->text, "complete");
  const auto& runs = report.find("runs")->items;
  ASSERT_EQ(runs.size(), 12u);  // 2 sizes x 2 rank counts x (baseline, staged, largest)
  int baseline_runs = 0, largest_runs = 0;
  for (const Value& run : runs) {
    ASSERT_EQ(run.find("status")->text, "ok") << run.find("error")->text;
    const double ms = number(run, "ms_per_step"), rate = number(run, "atom_steps_per_second");
    EXPECT_TRUE(ms > 0 && std::isfinite(ms));
    // atom-steps/s and ns/day follow from ms/step: 3 steps of 1 fs each
    EXPECT_NEAR(rate, number(run, "atoms") * 1000.0 / ms, 1e-9 * rate);
    EXPECT_NEAR(number(run, "ns_per_day"), 86400.0 / (ms / 1000.0) * 1e-6, 1e-9 * number(run, "ns_per_day"));
    if (run.find("pair_style")->text == "baseline") {
      ++baseline_runs;
      continue;
    }
    const double to_baseline = number(run, "ratio_to_baseline");
    EXPECT_TRUE(to_baseline > 0 && std::isfinite(to_baseline));
    EXPECT_FALSE(run.find("breakdown")->members.empty()) << "no pair style timing block parsed";
    double percent = 0;
    for (const auto& [label, entry] : run.find("breakdown")->members) percent += number(entry, "percent");
    EXPECT_NEAR(percent, 100.0, 0.1);
    EXPECT_GT(number(run, "peak_memory_mib_max"), 0);
    if (run.find("graphs")->text == "largest") {
      ++largest_runs;
      const double to_staged = number(run, "ratio_to_staged");
      EXPECT_TRUE(to_staged > 0 && std::isfinite(to_staged));
    }
  }
  EXPECT_EQ(baseline_runs, 4);
  EXPECT_EQ(largest_runs, 4);
  const Value& exponents = *report.find("cost_exponents");
  EXPECT_EQ(exponents.members.size(), 6u);
  for (const auto& [series, p] : exponents.members) EXPECT_TRUE(std::isfinite(p.as_double())) << series;
  EXPECT_NE(r.output.find("cost exponent"), std::string::npos) << r.output;
  std::ifstream image(png, std::ios::binary);
  char magic[8] = {};
  image.read(magic, 8);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
}

// A LAMMPS stand-in that runs the real one, except that its Nth call does `action`.
std::string flaky_lmp(const TempDir& dir, int failing_call, const std::string& action) {
  const std::string counter = dir.file("calls");
  const std::string script = dir.file("lmp", "#!/bin/sh\n"
                                             "echo x >> " + counter + "\n"
                                             "if [ $(wc -l < " + counter + ") -eq " + std::to_string(failing_call) +
                                             " ]; then " + action + "; fi\n"
                                             "exec " KLAY_BENCH_LMP " \"$@\"\n");
  fs::permissions(script, fs::perms::owner_all);
  return script;
}

TEST(BenchSpeed, FailingRunKeepsTheResultsAlreadyMeasured) {
  if (!have_lammps()) GTEST_SKIP() << "needs -DKLAY_WITH_LAMMPS=ON";
  TempDir dir;
  const std::string json = dir.file("speed.json");
  const std::string lmp = flaky_lmp(dir, 2, "echo 'ERROR: stand-in failure (src/x.cpp:1)'; exit 1");
  const Result r = run_command(speed_command(lmp, json, "--sizes 64,216 --ranks 1"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("stand-in failure"), std::string::npos) << r.output;
  const Value report = klay::json::parse_file(json);
  EXPECT_EQ(report.find("state")->text, "failed");
  const auto& runs = report.find("runs")->items;
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].find("status")->text, "ok");
  EXPECT_GT(number(runs[0], "ms_per_step"), 0);
  EXPECT_EQ(runs[1].find("status")->text, "failed");
  EXPECT_NE(runs[1].find("error")->text.find("stand-in failure"), std::string::npos);
}

TEST(BenchSpeed, InterruptKeepsTheResultsAlreadyMeasured) {
  if (!have_lammps()) GTEST_SKIP() << "needs -DKLAY_WITH_LAMMPS=ON";
  TempDir dir;
  const std::string json = dir.file("speed.json");
  // Ctrl-C: SIGINT to the terminal's foreground process group, klay's and mpirun's (setsid makes
  // it klay's own; Open MPI starts the ranks, here the stand-in, in a group of their own).
  const std::string lmp = flaky_lmp(dir, 2, "kill -INT -$(ps -o pgid= -p $PPID | tr -d ' '); sleep 5");
  const Result r = run_command("setsid -w " + speed_command(lmp, json, "--sizes 64,216 --ranks 1"));
  EXPECT_EQ(r.status, 130) << r.output;
  EXPECT_NE(r.output.find("interrupted"), std::string::npos) << r.output;
  const Value report = klay::json::parse_file(json);
  EXPECT_EQ(report.find("state")->text, "interrupted");
  const auto& runs = report.find("runs")->items;
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].find("status")->text, "ok");
}

TEST(BenchSpeed, BadOptionsAreUsageErrors) {
  Result r = run_klay("bench speed " + kModel + " " + kWeights + " --elements Si --sizes 500");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("500 is not 8 n^3"), std::string::npos) << r.output;
  r = run_klay("bench speed " + kModel + " " + kWeights);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--elements"), std::string::npos) << r.output;
  r = run_klay("bench speed " + kModel + " " + kWeights + " --elements Si --dtype float16");
  EXPECT_EQ(r.status, 2) << r.output;
  r = run_klay("bench speed " + kModel + " " + kWeights + " --elements Si --lmp /nonexistent/lmp");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("no LAMMPS executable at /nonexistent/lmp"), std::string::npos) << r.output;
}

}  // namespace
