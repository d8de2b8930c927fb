// The LAMMPS harness behind `klay bench speed`: which runs make up a speed benchmark, the LAMMPS
// input of each, running it under mpirun and reading what its log measured.
//
// System: diamond crystals of n^3 conventional cells (8 n^3 atoms), one atom type, velocities at
// 300 K, NVE. Each run: `warmup` untimed steps, then `steps` timed steps whose LAMMPS "Loop time"
// gives ms/step; the pair style's own timing block (printed at the end of every run, see
// lammps_pkg/pair_klay.cpp) gives the breakdown and the peak memory per rank.
//
// Kept out of the shared runtime library: it forks processes and installs a SIGINT handler, which
// nothing that the LAMMPS plugin loads should do.
#pragma once
#include <signal.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace klay::bench_speed {

// What every run of one benchmark shares.
struct Setup {
  std::string yaml, weights, element;  // the model and the element fed to pair_coeff
  std::vector<int> cells{4, 8, 16};    // crystal sizes, conventional cells per direction
  std::vector<int> ranks{1, 2};        // MPI rank counts
  std::vector<std::string> dtypes{"float64"};
  bool compare_largest = false;        // also run `pair_style klay graphs largest`
  int threads = 1, steps = 20, warmup = 5;
  double timestep = 0.001, lattice = 5.431, mass = 28.0855;  // ps, Å, g/mol
  std::vector<std::string> baseline;   // LAMMPS commands of the baseline pair style; empty: none
  std::string lmp, mpirun = "mpirun";
};

enum class RunKind { Baseline, Staged, Largest };

struct Run {
  RunKind kind;
  std::string dtype;  // "" for the baseline
  int ranks = 1;
  int cells = 1;  // per direction
  int64_t atoms() const { return 8LL * cells * cells * cells; }
  // "baseline np2", "klay staged float64 np1", ...: the runs of one series differ only in size.
  std::string series() const;
};

struct BreakdownEntry {
  std::string label;
  double seconds;
  double percent;
};

struct Measurement {
  Run run;
  bool ok = false;
  std::string error;
  std::string log;  // path of the LAMMPS log
  int steps = 0;
  double loop_seconds = 0;
  std::vector<BreakdownEntry> breakdown;
  std::optional<double> peak_mib_max, peak_mib_min;
  std::optional<double> lammps_mib;  // LAMMPS's own per-rank estimate (max)
  double ms_per_step() const { return 1000.0 * loop_seconds / steps; }
  double atom_steps_per_second() const { return static_cast<double>(run.atoms()) * steps / loop_seconds; }
  double us_per_atom_step() const { return 1e6 / atom_steps_per_second(); }
  double ns_per_day(double timestep_ps) const { return 86400.0 / (loop_seconds / steps) * timestep_ps * 1e-3; }
};

// For every size and rank count: the baseline (if any), then for every dtype the model with
// staged graphs and, with compare_largest, with the largest graph. Runs that are compared (model
// against baseline, largest against staged) are thus made minutes apart on the same machine.
std::vector<Run> planned_runs(const Setup& setup);

// The LAMMPS input script of one run.
std::string lammps_input(const Setup& setup, const Run& run);

// The command line that runs one run's input under mpirun. With more than one thread per rank the
// ranks are not bound: Open MPI binds each rank to one core when it starts two ranks or fewer, and
// the rank's threads would then share that core.
std::vector<std::string> mpirun_command(const Setup& setup, const Run& run, const std::string& input_path,
                                        const std::string& log_path);

// Fills loop time, steps, memory, breakdown and peak memory from a LAMMPS log; leaves what the
// log does not say as it is.
void parse_log(const std::string& log, Measurement& m);

// The first ERROR line of LAMMPS's output, else its last lines.
std::string failure_reason(const std::string& output);

// One line for the report: CPU, logical cores and the load average when it starts.
std::string machine_description();

// One line for the report: crystal, temperature, steps, threads.
std::string describe_setup(const Setup& setup);

// Runs LAMMPS under mpirun, one run at a time, in the caller's working directory (relative paths
// in the model and baseline arguments keep their meaning); inputs, logs and output go to a
// temporary folder made by the constructor. While it lives, SIGINT (Ctrl-C) stops the run in
// progress and marks the session interrupted instead of ending klay, so that the caller can keep
// what was measured.
class LammpsSession {
 public:
  explicit LammpsSession(Setup setup);
  ~LammpsSession();
  LammpsSession(const LammpsSession&) = delete;
  LammpsSession& operator=(const LammpsSession&) = delete;

  const std::string& folder() const { return folder_; }
  // Runs one run; a failed run is a Measurement with ok false and the reason in `error`.
  // `index` numbers its files in folder() (run1.in, run1.log, ...).
  Measurement measure(const Run& run, int index);
  bool interrupted() const;

 private:
  Setup setup_;
  std::string folder_;
  struct sigaction previous_sigint_ {};
};

}  // namespace klay::bench_speed
