// `klay bench speed MODEL.yaml WEIGHTS --elements Si`: molecular-dynamics speed of a model under
// `pair_style klay` in real LAMMPS runs, side by side with a baseline pair style in the same
// invocation. This file reads the options and reports; the runs themselves are
// src/bench_speed/speed_harness.hpp's, their ratios and cost exponents speed_summary.hpp's.
//
// --sizes must be 8 n^3 atoms (diamond crystals of n^3 cells); --timestep (ps, metal units) turns
// ms/step into ns/day. Every finished run is added to --json at once (rewritten whole,
// atomically; its "state" is running, complete, failed or interrupted), so an interrupted
// benchmark (SIGINT, a failing LAMMPS run) keeps what it measured; it then prints the table of the
// finished runs and exits 130 (interrupted) or 1 (failed run). LAMMPS inputs and logs stay in a
// temporary folder named at the start.
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bench_speed/speed_harness.hpp"
#include "bench_speed/speed_summary.hpp"
#include "cli/cmd_bench.hpp"
#include "md/md_model.hpp"
#include "base/error.hpp"

namespace klay::bench {

namespace {

using bench_speed::BreakdownEntry;
using bench_speed::describe_setup;
using bench_speed::LammpsSession;
using bench_speed::Measurement;
using bench_speed::ratio_to_baseline;
using bench_speed::ratio_to_staged;
using bench_speed::Run;
using bench_speed::RunKind;
using bench_speed::Series;
using bench_speed::series_of;

// The runs' setup and where the report goes.
struct Options : bench_speed::Setup {
  std::string json_path, plot_path;
};

constexpr const char* kUsage =
    "usage: klay bench speed MODEL.yaml WEIGHTS --elements Si [options]\n"
    "  --sizes 512,4096,32768   atoms, each 8 n^3 (diamond crystal of n^3 cells)\n"
    "  --ranks 1,2              MPI ranks (mpirun --allow-run-as-root --oversubscribe -np R)\n"
    "  --dtype float64,float32  pair_style klay dtype\n"
    "  --threads N              OMP_NUM_THREADS and pair_style klay threads (1)\n"
    "  --steps N  --warmup N    timed steps (20) after untimed warm-up steps (5)\n"
    "  --timestep PS            MD timestep in ps, for ns/day (0.001)\n"
    "  --baseline \"pair_style sw; pair_coeff * * Si.sw Si\"   another pair style on the same systems\n"
    "  --compare-largest-graph  also run `pair_style klay graphs largest` (cost of staged graphs)\n"
    "  --json OUT.json  --plot SPEED.png\n"
    "  --lmp PATH (default: lmp next to the klay executable)  --mpirun PATH (mpirun)\n"
    "  --lattice A (5.431)  --mass M (28.0855)\n";

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, separator)) {
    const size_t b = part.find_first_not_of(" \t"), e = part.find_last_not_of(" \t");
    if (b != std::string::npos) parts.push_back(part.substr(b, e - b + 1));
  }
  return parts;
}

std::vector<int> int_list(const char* option, const std::string& text) {
  std::vector<int> values;
  for (const std::string& part : split(text, ',')) values.push_back(positive_int_option(option, part));
  if (values.empty()) throw UsageError(std::string(option) + ": expected a comma-separated list");
  return values;
}

std::string directory_of_executable() {
  char path[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return ".";
  path[n] = '\0';
  const std::string exe(path);
  return exe.substr(0, exe.rfind('/'));
}

Options parse_options(int argc, char** argv) {
  Options o;
  std::vector<std::string> positional, elements;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--elements") {
      elements = split(option_value(i, argc, argv), ',');
    } else if (arg == "--sizes") {
      o.cells.clear();
      for (const int size : int_list("--sizes", option_value(i, argc, argv))) {
        const int cells = static_cast<int>(std::lround(std::cbrt(size / 8.0)));
        if (8 * cells * cells * cells != size)
          throw UsageError("--sizes: " + std::to_string(size) + " is not 8 n^3 (a diamond crystal of n^3 cells: 64, " +
                           "216, 512, 1728, 4096, ...)");
        o.cells.push_back(cells);
      }
    } else if (arg == "--ranks") {
      o.ranks = int_list("--ranks", option_value(i, argc, argv));
    } else if (arg == "--dtype") {
      o.dtypes = split(option_value(i, argc, argv), ',');
      for (const std::string& d : o.dtypes)
        if (d != "float64" && d != "float32") throw UsageError("--dtype: expected float64 or float32, got '" + d + "'");
    } else if (arg == "--threads") {
      o.threads = positive_int_option("--threads", option_value(i, argc, argv));
    } else if (arg == "--steps") {
      o.steps = positive_int_option("--steps", option_value(i, argc, argv));
    } else if (arg == "--warmup") {
      const std::string text = option_value(i, argc, argv);
      o.warmup = text == "0" ? 0 : positive_int_option("--warmup", text);
    } else if (arg == "--timestep") {
      o.timestep = positive_real_option("--timestep", option_value(i, argc, argv));
    } else if (arg == "--lattice") {
      o.lattice = positive_real_option("--lattice", option_value(i, argc, argv));
    } else if (arg == "--mass") {
      o.mass = positive_real_option("--mass", option_value(i, argc, argv));
    } else if (arg == "--baseline") {
      o.baseline = split(option_value(i, argc, argv), ';');
      if (o.baseline.empty()) throw UsageError("--baseline: expected LAMMPS commands separated by ';'");
    } else if (arg == "--compare-largest-graph") {
      o.compare_largest = true;
    } else if (arg == "--json") {
      o.json_path = option_value(i, argc, argv);
    } else if (arg == "--plot") {
      o.plot_path = option_value(i, argc, argv);
    } else if (arg == "--lmp") {
      o.lmp = option_value(i, argc, argv);
    } else if (arg == "--mpirun") {
      o.mpirun = option_value(i, argc, argv);
    } else if (arg.size() > 1 && arg[0] == '-') {
      throw UsageError("unknown option '" + arg + "'");
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2)
    throw UsageError("expected MODEL.yaml WEIGHTS, got " + std::to_string(positional.size()) + " arguments");
  o.yaml = positional[0];
  o.weights = positional[1];
  if (elements.size() != 1)
    throw UsageError("--elements: the benchmark crystal has one atom type; give exactly one element (e.g. Si)");
  o.element = elements[0];
  if (o.lmp.empty()) o.lmp = directory_of_executable() + "/lmp";
  return o;
}

json::Value results_json(const Options& o, const std::string& machine, const std::vector<Measurement>& all,
                         const std::string& state) {
  json::Value root = json::Value::make_object();
  root.set("model", json::Value::make_string(o.yaml));
  root.set("weights", json::Value::make_string(o.weights));
  root.set("element", json::Value::make_string(o.element));
  root.set("setup", json::Value::make_string(describe_setup(o)));
  root.set("machine", json::Value::make_string(machine));
  root.set("timestep_ps", json_number(o.timestep));
  root.set("warmup_steps", json_integer(o.warmup));
  root.set("steps", json_integer(o.steps));
  root.set("threads", json_integer(o.threads));
  std::string baseline;
  for (const std::string& c : o.baseline) baseline += (baseline.empty() ? "" : "; ") + c;
  root.set("baseline", o.baseline.empty() ? json::Value() : json::Value::make_string(baseline));
  root.set("state", json::Value::make_string(state));
  json::Value runs = json::Value::make_array();
  for (const Measurement& m : all) {
    json::Value r = json::Value::make_object();
    r.set("series", json::Value::make_string(m.run.series()));
    r.set("pair_style", json::Value::make_string(m.run.kind == RunKind::Baseline ? "baseline" : "klay"));
    r.set("graphs", m.run.kind == RunKind::Baseline ? json::Value()
                                                     : json::Value::make_string(m.run.kind == RunKind::Staged ? "staged" : "largest"));
    r.set("dtype", m.run.dtype.empty() ? json::Value() : json::Value::make_string(m.run.dtype));
    r.set("ranks", json_integer(m.run.ranks));
    r.set("atoms", json_integer(m.run.atoms()));
    r.set("status", json::Value::make_string(m.ok ? "ok" : "failed"));
    r.set("log", json::Value::make_string(m.log));
    if (!m.ok) {
      r.set("error", json::Value::make_string(m.error));
    } else {
      r.set("loop_seconds", json_number(m.loop_seconds));
      r.set("ms_per_step", json_number(m.ms_per_step()));
      r.set("atom_steps_per_second", json_number(m.atom_steps_per_second()));
      r.set("us_per_atom_step", json_number(m.us_per_atom_step()));
      r.set("ns_per_day", json_number(m.ns_per_day(o.timestep)));
      json::Value breakdown = json::Value::make_object();
      for (const BreakdownEntry& e : m.breakdown) {
        json::Value item = json::Value::make_object();
        item.set("seconds", json_number(e.seconds));
        item.set("percent", json_number(e.percent));
        breakdown.set(e.label, item);
      }
      r.set("breakdown", breakdown);
      r.set("peak_memory_mib_max", m.peak_mib_max ? json_number(*m.peak_mib_max) : json::Value());
      r.set("peak_memory_mib_min", m.peak_mib_min ? json_number(*m.peak_mib_min) : json::Value());
      r.set("lammps_memory_mib", m.lammps_mib ? json_number(*m.lammps_mib) : json::Value());
      const auto to_baseline = ratio_to_baseline(all, m), to_staged = ratio_to_staged(all, m);
      r.set("ratio_to_baseline", to_baseline ? json_number(*to_baseline) : json::Value());
      r.set("ratio_to_staged", to_staged ? json_number(*to_staged) : json::Value());
    }
    runs.items.push_back(r);
  }
  root.set("runs", runs);
  json::Value exponents = json::Value::make_object();
  for (const Series& s : series_of(all))
    if (s.exponent) exponents.set(s.name, json_number(*s.exponent));
  root.set("cost_exponents", exponents);
  return root;
}

// "-" for a value not measured.
std::string formatted(const char* format, std::optional<double> value) {
  if (!value) return "-";
  char text[32];
  std::snprintf(text, sizeof text, format, *value);
  return text;
}

void print_table(const Options& o, const std::string& machine, const std::vector<Measurement>& all) {
  std::printf("# model %s %s, element %s\n# %s\n# machine: %s\n", o.yaml.c_str(), o.weights.c_str(),
              o.element.c_str(), describe_setup(o).c_str(), machine.c_str());
  if (!o.baseline.empty()) {
    std::string baseline;
    for (const std::string& c : o.baseline) baseline += (baseline.empty() ? "" : "; ") + c;
    std::printf("# baseline: %s\n", baseline.c_str());
  }
  std::vector<std::string> labels;  // breakdown columns, in the order the pair style prints them
  for (const Measurement& m : all)
    for (const BreakdownEntry& e : m.breakdown)
      if (std::find(labels.begin(), labels.end(), e.label) == labels.end()) labels.push_back(e.label);
  std::printf("%-24s %7s %9s %12s %9s", "run", "atoms", "ms/step", "atom-steps/s", "ns/day");
  for (const std::string& label : labels) std::printf(" %*s", std::max<int>(8, label.size() + 1), (label + "%").c_str());
  std::printf(" %9s %11s %14s\n", "peak MiB", "/baseline", "largest/staged");
  for (const Measurement& m : all) {
    if (!m.ok) {
      std::printf("%-24s %7lld  failed: %s\n", m.run.series().c_str(), static_cast<long long>(m.run.atoms()),
                  m.error.c_str());
      continue;
    }
    std::printf("%-24s %7lld %9.3f %12.4g %9.4g", m.run.series().c_str(), static_cast<long long>(m.run.atoms()),
                m.ms_per_step(), m.atom_steps_per_second(), m.ns_per_day(o.timestep));
    for (const std::string& label : labels) {
      const auto it = std::find_if(m.breakdown.begin(), m.breakdown.end(),
                                   [&](const BreakdownEntry& e) { return e.label == label; });
      const int width = std::max<int>(8, label.size() + 1);
      if (it == m.breakdown.end())
        std::printf(" %*s", width, "-");
      else
        std::printf(" %*.1f", width, it->percent);
    }
    const std::optional<double> memory = m.peak_mib_max ? m.peak_mib_max : m.lammps_mib;
    const auto to_baseline = ratio_to_baseline(all, m), to_staged = ratio_to_staged(all, m);
    std::printf(" %9s %11s %14s\n", formatted("%.0f", memory).c_str(), formatted("%.4gx", to_baseline).c_str(),
                formatted("%.3fx", to_staged).c_str());
  }
  std::printf("# peak MiB: the pair style's peak memory per rank (max over ranks); for the baseline LAMMPS's own\n"
              "# per-rank estimate. /baseline and largest/staged: ratios of ms/step at the same size and ranks.\n");
  for (const Series& s : series_of(all))
    if (s.exponent)
      std::printf("# cost exponent (ms/step ~ atoms^p, %zu sizes): %-24s p = %.3f\n", s.points.size(), s.name.c_str(),
                  *s.exponent);
}

void plot_speed(const std::string& png, const std::vector<Measurement>& all) {
  const std::vector<Series> series = series_of(all);
  if (series.empty()) throw Error("no finished run to plot");
  std::ostringstream script;
  script.precision(10);
  script << "set terminal pngcairo size 1000,600\nset output " << gnuplot_string(png) << "\n";
  for (size_t k = 0; k < series.size(); ++k) {
    script << "$series" << k << " << EOD\n";
    for (const Measurement* m : series[k].points) script << m->run.atoms() << ' ' << m->us_per_atom_step() << '\n';
    script << "EOD\n";
  }
  script << "set logscale xy\nset grid\nset key outside right\nset title \"MD cost per atom-step\"\n"
            "set xlabel \"atoms\"\nset ylabel \"microseconds per atom-step\"\nplot ";
  for (size_t k = 0; k < series.size(); ++k)
    script << (k ? ", " : "") << "$series" << k << " using 1:2 with linespoints pt 7 title " << gnuplot_string(series[k].name);
  script << "\n";
  run_gnuplot(script.str());
}

}  // namespace

int speed(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "-h") == 0 || std::strcmp(argv[i], "--help") == 0) {
      std::printf("%s", kUsage);
      return 0;
    }
  Options o;
  try {
    o = parse_options(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "klay bench speed: %s\n%s", e.what(), kUsage);
    return 2;
  }
  try {
    // Loaded here once so that a wrong model or weights path is one clear message, not a failure
    // in every LAMMPS run's log.
    md::MdModel::load(o.yaml, o.weights, /*single_precision=*/false);
    if (access(o.lmp.c_str(), X_OK) != 0)
      throw Error("no LAMMPS executable at " + o.lmp + " (build with -DKLAY_WITH_LAMMPS=ON, or pass --lmp PATH)");
    const std::string machine = bench_speed::machine_description();
    const std::vector<Run> runs = bench_speed::planned_runs(o);
    std::vector<Measurement> done;
    std::string state = "complete";
    {
      LammpsSession session(o);
      std::fprintf(stderr, "klay bench speed: %zu LAMMPS runs; inputs and logs in %s\n", runs.size(),
                   session.folder().c_str());
      for (size_t k = 0; k < runs.size(); ++k) {
        std::fprintf(stderr, "[%zu/%zu] %s, %lld atoms ...\n", k + 1, runs.size(), runs[k].series().c_str(),
                     static_cast<long long>(runs[k].atoms()));
        Measurement m = session.measure(runs[k], static_cast<int>(k) + 1);
        if (session.interrupted()) {
          state = "interrupted";
          break;  // a run cut short measures nothing
        }
        if (m.ok)
          std::fprintf(stderr, "[%zu/%zu] done: %.3f ms/step, %.4g atom-steps/s\n", k + 1, runs.size(),
                       m.ms_per_step(), m.atom_steps_per_second());
        else
          std::fprintf(stderr, "[%zu/%zu] failed: %s (log %s)\n", k + 1, runs.size(), m.error.c_str(), m.log.c_str());
        if (!m.ok) state = "failed";
        done.push_back(std::move(m));
        const bool last = state == "failed" || k + 1 == runs.size();
        if (!o.json_path.empty()) write_json_file(o.json_path, results_json(o, machine, done, last ? state : "running"));
        if (last) break;
      }
    }
    if (state == "interrupted") {
      std::fprintf(stderr, "klay bench speed: interrupted; keeping the %zu finished runs\n", done.size());
      if (!o.json_path.empty()) write_json_file(o.json_path, results_json(o, machine, done, state));
    }
    print_table(o, machine, done);
    if (!o.plot_path.empty() && !series_of(done).empty()) plot_speed(o.plot_path, done);
    return state == "complete" ? 0 : state == "interrupted" ? 130 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "klay bench speed: %s\n", exception_message(e).c_str());
    return 1;
  }
}

}  // namespace klay::bench
