#include "bench_speed/speed_harness.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "base/error.hpp"
#include "base/files.hpp"

namespace klay::bench_speed {

namespace {

volatile sig_atomic_t g_interrupted = 0;
volatile pid_t g_child = 0;

void on_sigint(int) {
  g_interrupted = 1;
  // A SIGINT sent to klay alone (not from a terminal, which signals the whole group) must still
  // stop the run in progress.
  if (g_child > 0) kill(g_child, SIGINT);
}

// What a LAMMPS run left at `path`, or why there is nothing: a run that failed early may leave no
// log, and the reason then belongs in the message about the run.
std::string text_or_reason(const std::string& path, const std::string& what) {
  try {
    return read_whole_file(path, what);
  } catch (const Error& e) {
    return e.what();
  }
}

}  // namespace

std::string Run::series() const {
  const std::string what = kind == RunKind::Baseline ? "baseline"
                           : kind == RunKind::Staged ? "klay staged " + dtype
                                                     : "klay largest " + dtype;
  return what + " np" + std::to_string(ranks);
}

std::vector<Run> planned_runs(const Setup& setup) {
  std::vector<Run> runs;
  for (const int cells : setup.cells) {
    for (const int ranks : setup.ranks) {
      if (!setup.baseline.empty()) runs.push_back({RunKind::Baseline, "", ranks, cells});
      for (const std::string& dtype : setup.dtypes) {
        runs.push_back({RunKind::Staged, dtype, ranks, cells});
        if (setup.compare_largest) runs.push_back({RunKind::Largest, dtype, ranks, cells});
      }
    }
  }
  return runs;
}

std::string lammps_input(const Setup& setup, const Run& run) {
  std::ostringstream in;
  in.precision(17);
  in << "# klay bench speed: " << run.series() << ", " << run.atoms() << " atoms\n"
     << "units metal\natom_style atomic\nboundary p p p\n"
     << "lattice diamond " << setup.lattice << "\n"
     << "region box block 0 " << run.cells << " 0 " << run.cells << " 0 " << run.cells << "\n"
     << "create_box 1 box\ncreate_atoms 1 box\nmass 1 " << setup.mass << "\n";
  if (run.kind == RunKind::Baseline) {
    for (const std::string& command : setup.baseline) in << command << "\n";
  } else {
    in << "pair_style klay dtype " << run.dtype << " threads " << setup.threads
       << (run.kind == RunKind::Largest ? " graphs largest" : "") << "\n"
       << "pair_coeff * * " << setup.yaml << " " << setup.weights << " " << setup.element << "\n";
  }
  in << "velocity all create 300.0 4928459 loop geom\nfix integrate all nve\n"
     << "timestep " << setup.timestep << "\nthermo 0\n";
  if (setup.warmup > 0) in << "run " << setup.warmup << "\n";
  in << "run " << setup.steps << "\n";
  return in.str();
}

std::string failure_reason(const std::string& output) {
  std::istringstream in(output);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("ERROR", 0) == 0) return line;
    lines.push_back(line);
  }
  std::string tail;
  for (size_t k = lines.size() > 5 ? lines.size() - 5 : 0; k < lines.size(); ++k) tail += "\n  " + lines[k];
  return "LAMMPS failed without an ERROR line; its output ends:" + tail;
}

void parse_log(const std::string& log, Measurement& m) {
  static const std::regex loop(R"(Loop time of ([0-9.eE+-]+) on \d+ procs for (\d+) steps with \d+ atoms)");
  static const std::regex memory(R"(Per MPI rank memory allocation \(min/avg/max\) = \S+ \| \S+ \| ([0-9.eE+-]+) Mbytes)");
  static const std::regex entry(R"(^  (\S.*?)\s+([0-9.eE+-]+) s\s+([0-9.]+)%$)");
  static const std::regex peak(R"(^  peak memory per rank\s+([0-9.eE+-]+) MiB max, ([0-9.eE+-]+) MiB min)");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), loop); it != std::sregex_iterator(); ++it) {
    m.loop_seconds = std::stod((*it)[1]);
    m.steps = std::stoi((*it)[2]);
  }
  for (auto it = std::sregex_iterator(log.begin(), log.end(), memory); it != std::sregex_iterator(); ++it)
    m.lammps_mib = std::stod((*it)[1]);
  // The last timing block belongs to the timed run (the pair style prints one per run).
  const size_t block = log.rfind("Pair style klay timing (");
  if (block == std::string::npos) return;
  std::istringstream lines(log.substr(block));
  std::string line;
  std::getline(lines, line);
  while (std::getline(lines, line)) {
    std::smatch match;
    if (std::regex_search(line, match, peak)) {
      m.peak_mib_max = std::stod(match[1]);
      m.peak_mib_min = std::stod(match[2]);
    } else if (std::regex_match(line, match, entry)) {
      m.breakdown.push_back({match[1], std::stod(match[2]), std::stod(match[3])});
    } else {
      break;
    }
  }
}

std::string machine_description() {
  std::string cpu = "unknown CPU";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);)
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  std::string load;
  std::ifstream loadavg("/proc/loadavg");
  loadavg >> load;
  return cpu + ", " + std::to_string(std::thread::hardware_concurrency()) + " logical cores, load average " + load +
         " at start";
}

std::string describe_setup(const Setup& setup) {
  std::ostringstream s;
  s << "diamond crystal, a = " << setup.lattice << " A, mass " << setup.mass << ", 300 K NVE, " << setup.warmup
    << " warm-up + " << setup.steps << " timed steps of " << setup.timestep << " ps, " << setup.threads
    << " OpenMP/torch thread(s) per rank";
  return s.str();
}

LammpsSession::LammpsSession(Setup setup) : setup_(std::move(setup)) {
  folder_ = (std::getenv("TMPDIR") ? std::string(std::getenv("TMPDIR")) : std::string("/tmp")) +
            "/klay-bench-speed-XXXXXX";
  if (!mkdtemp(folder_.data()))
    throw Error("cannot create a folder for the LAMMPS logs: " + std::string(std::strerror(errno)));
  g_interrupted = 0;
  struct sigaction action {};
  action.sa_handler = on_sigint;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &previous_sigint_);
}

LammpsSession::~LammpsSession() { sigaction(SIGINT, &previous_sigint_, nullptr); }

bool LammpsSession::interrupted() const { return g_interrupted != 0; }

std::vector<std::string> mpirun_command(const Setup& setup, const Run& run, const std::string& input_path,
                                        const std::string& log_path) {
  std::vector<std::string> args{setup.mpirun, "--allow-run-as-root", "--oversubscribe"};
  if (setup.threads > 1) args.insert(args.end(), {"--bind-to", "none"});
  args.insert(args.end(), {"-np", std::to_string(run.ranks), "-x", "OMP_NUM_THREADS", setup.lmp, "-in", input_path,
                           "-log", log_path});
  return args;
}

Measurement LammpsSession::measure(const Run& run, int index) {
  Measurement m;
  m.run = run;
  const std::string stem = folder_ + "/run" + std::to_string(index);
  const std::string input_path = stem + ".in", log_path = stem + ".log", output_path = stem + ".out";
  m.log = log_path;
  {
    std::ofstream input(input_path);
    input << lammps_input(setup_, run);
    if (!input.flush()) throw Error("cannot write " + input_path);
  }
  std::vector<std::string> args = mpirun_command(setup_, run, input_path, log_path);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string threads = std::to_string(setup_.threads);
  std::fflush(nullptr);
  const pid_t child = fork();
  if (child < 0) throw Error(std::string("cannot start mpirun: ") + std::strerror(errno));
  if (child == 0) {
    FILE* out = std::freopen(output_path.c_str(), "w", stdout);
    if (!out || dup2(fileno(stdout), STDERR_FILENO) < 0) _exit(126);
    setenv("OMP_NUM_THREADS", threads.c_str(), 1);
    execvp(argv[0], argv.data());
    std::fprintf(stderr, "ERROR: cannot run %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  g_child = child;
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  g_child = 0;
  if (g_interrupted) {
    m.error = "interrupted";
    return m;
  }
  const std::string log = text_or_reason(log_path, "LAMMPS log");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    m.error = failure_reason(text_or_reason(output_path, "LAMMPS output") + "\n" + log);
    return m;
  }
  parse_log(log, m);
  if (m.steps != setup_.steps || !(m.loop_seconds > 0)) {
    m.error = "no 'Loop time' line for the " + std::to_string(setup_.steps) + " timed steps in " + log_path;
    return m;
  }
  m.ok = true;
  return m;
}

}  // namespace klay::bench_speed
