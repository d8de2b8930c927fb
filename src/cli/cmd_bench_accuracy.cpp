// `klay bench accuracy MODEL.yaml WEIGHTS DATA.xyz [--model MODEL2.yaml WEIGHTS2]...`: the errors
// of one or more models against the labels of a multi-frame extended-XYZ file (ASE's conventions,
// md/xyz.hpp), every model evaluated by md::evaluate_structure exactly as `klay eval` does.
//
// Metrics (error = model - label), each over the frames that carry the label:
//   energy per atom   (E_model - E_label) / n_atoms per frame       eV/atom
//   forces            every Cartesian component of every atom        eV/Å, also per element
//   stress            the 9 components of -virial / volume           eV/Å^3, frames periodic in
//                     all three directions; the model's virial is md::StructureResult::virial (a
//                     model fed one shifts graph has none: its stress is reported as not available)
// Output: a comparison table (one column per model, meV units), the K worst frames of each model
// by force RMSE (by energy error when the data has no forces), --json with eV units, --plot
// parity plots (energy per atom and force components, every model on the same axes), --group KEY
// the energy and force errors per value of a comment-line key (e.g. config_type=liquid).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "analysis/error_stats.hpp"
#include "cli/cmd_bench.hpp"
#include "md/md_model.hpp"
#include "md/structure_eval.hpp"
#include "md/xyz.hpp"
#include "base/error.hpp"

namespace klay::bench {

namespace {

constexpr const char* kUsage =
    "usage: klay bench accuracy MODEL.yaml WEIGHTS DATA.xyz [--model MODEL2.yaml WEIGHTS2]... [--json OUT.json]\n"
    "                           [--plot PARITY.png] [--worst K] [--group KEY] [--float32]\n"
    "  DATA.xyz   extended XYZ frames with energy=, a forces:R:3 column and optionally virial= or stress=\n"
    "  --model    one more model on the same data (repeatable): one comparison table\n"
    "  --json     metrics in eV units; --plot energy and force parity plots (PNG); --worst K frames (5)\n"
    "  --group    also errors per value of the comment-line key KEY (frames without it: '(none)')\n";

struct ModelSpec {
  std::string yaml;
  std::string weights;
};

struct FrameError {
  int frame = 0;  // 1-based
  int line = 0;
  int64_t n_atoms = 0;
  std::optional<double> energy_error_per_atom;
  analysis::ErrorStats forces;
};

struct GroupErrors {
  int frames = 0;
  analysis::ErrorStats energy_per_atom, forces;
};

struct ModelReport {
  ModelSpec spec;
  std::map<std::string, GroupErrors> groups;  // by the value of --group's key
  analysis::ErrorStats energy_per_atom, forces, stress;
  int stress_frames_without_model_virial = 0;
  std::map<std::string, analysis::ErrorStats> forces_by_element;
  std::vector<FrameError> frames;
  std::vector<std::pair<double, double>> energy_parity;  // (label, model) eV/atom
  std::vector<std::pair<double, double>> force_parity;   // (label, model) eV/Å
};

struct DataSummary {
  int frames = 0, with_energy = 0, with_forces = 0, with_stress = 0, unlabelled = 0;
};

constexpr const char* kStressUnavailable =
    "not available for some frames: a model fed one periodic graph with shifts gives no virial";

bool fully_periodic(const md::Structure& s) {
  return s.has_lattice && s.cell.periodic[0] && s.cell.periodic[1] && s.cell.periodic[2];
}

double cell_volume(const md::Cell& cell) {
  const auto& v = cell.vectors;
  return std::fabs(v[0][0] * (v[1][1] * v[2][2] - v[1][2] * v[2][1]) -
                   v[0][1] * (v[1][0] * v[2][2] - v[1][2] * v[2][0]) +
                   v[0][2] * (v[1][0] * v[2][1] - v[1][1] * v[2][0]));
}

DataSummary summarize(const std::vector<md::LabelledFrame>& frames) {
  DataSummary s;
  s.frames = static_cast<int>(frames.size());
  for (const md::LabelledFrame& f : frames) {
    s.with_energy += f.energy.has_value();
    s.with_forces += !f.forces.empty();
    s.with_stress += f.virial.has_value() && fully_periodic(f.structure);
    s.unlabelled += !f.energy && f.forces.empty() && !f.virial;
  }
  return s;
}

ModelReport evaluate_model(const ModelSpec& spec, bool single_precision, const std::vector<md::LabelledFrame>& frames,
                           const std::string& data_path, const std::string& group_key) {
  ModelReport report;
  report.spec = spec;
  auto model = md::MdModel::load(spec.yaml, spec.weights, single_precision);
  for (size_t k = 0; k < frames.size(); ++k) {
    const md::LabelledFrame& frame = frames[k];
    const bool stress_labelled = frame.virial && fully_periodic(frame.structure);
    if (!frame.energy && frame.forces.empty() && !stress_labelled) continue;
    md::StructureResult result;
    try {
      result = md::evaluate_structure(*model, frame.structure);
    } catch (const std::exception& e) {
      throw Error(data_path + ":" + std::to_string(frame.line) + ": frame " + std::to_string(k + 1) + ": " + exception_message(e));
    }
    FrameError error;
    error.frame = static_cast<int>(k) + 1;
    error.line = frame.line;
    error.n_atoms = frame.structure.size();
    const double n = static_cast<double>(error.n_atoms);
    if (frame.energy) {
      report.energy_per_atom.add(result.energy / n, *frame.energy / n);
      report.energy_parity.emplace_back(*frame.energy / n, result.energy / n);
      error.energy_error_per_atom = (result.energy - *frame.energy) / n;
    }
    for (size_t c = 0; c < frame.forces.size(); ++c) {
      error.forces.add(result.forces[c], frame.forces[c]);
      report.forces_by_element[frame.structure.elements[c / 3]].add(result.forces[c], frame.forces[c]);
      report.force_parity.emplace_back(frame.forces[c], result.forces[c]);
    }
    report.forces.merge(error.forces);
    if (!group_key.empty()) {
      const auto value = frame.info.find(group_key);
      GroupErrors& group = report.groups[value == frame.info.end() ? "(none)" : value->second];
      ++group.frames;
      if (error.energy_error_per_atom) group.energy_per_atom.add(*error.energy_error_per_atom, 0.0);
      group.forces.merge(error.forces);
    }
    if (stress_labelled && result.virial.size() == 9) {
      // ASE's stress is -virial / volume for the model and the label alike.
      const double volume = cell_volume(frame.structure.cell);
      for (int c = 0; c < 9; ++c) report.stress.add(-result.virial[c] / volume, -(*frame.virial)[c] / volume);
    } else if (stress_labelled) {
      ++report.stress_frames_without_model_virial;
    }
    report.frames.push_back(error);
  }
  return report;
}

// Worst first: by force RMSE when the frames have forces, otherwise by |energy error|.
std::vector<FrameError> worst_frames(std::vector<FrameError> frames, int count) {
  auto badness = [](const FrameError& f) {
    return std::make_pair(f.forces.rmse(), f.energy_error_per_atom ? std::fabs(*f.energy_error_per_atom) : 0.0);
  };
  std::stable_sort(frames.begin(), frames.end(),
                   [&](const FrameError& a, const FrameError& b) { return badness(a) > badness(b); });
  if (static_cast<int>(frames.size()) > count) frames.resize(count);
  return frames;
}

// `text` padded to `width` characters; printf's widths count bytes, and units like "meV/Å" are UTF-8.
std::string padded(const std::string& text, size_t width, bool align_right = false) {
  size_t characters = 0;
  for (const char c : text) characters += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  const std::string fill(width > characters ? width - characters : 0, ' ');
  return align_right ? fill + text : text + fill;
}

std::string meV(const analysis::ErrorStats& stats, double (analysis::ErrorStats::*metric)() const) {
  if (stats.count() == 0) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.4f", 1000.0 * (stats.*metric)());
  return text;
}

void print_table(const std::string& data_path, const DataSummary& data, const std::vector<ModelReport>& reports,
                 int worst, bool single_precision) {
  std::printf("# data: %s: %d frames, %d with energy, %d with forces, %d with stress/virial, %d without labels\n",
              data_path.c_str(), data.frames, data.with_energy, data.with_forces, data.with_stress, data.unlabelled);
  for (size_t m = 0; m < reports.size(); ++m)
    std::printf("# model %zu: %s %s (%s)\n", m + 1, reports[m].spec.yaml.c_str(), reports[m].spec.weights.c_str(),
                single_precision ? "float32" : "float64");
  std::printf("%-24s %-9s", "metric", "unit");
  for (size_t m = 0; m < reports.size(); ++m) std::printf(" %14s", ("model " + std::to_string(m + 1)).c_str());
  std::printf("\n");
  using Metric = double (analysis::ErrorStats::*)() const;
  auto row = [&](const std::string& name, const char* unit, auto stats_of, Metric metric) {
    std::printf("%-24s %s", name.c_str(), padded(unit, 9).c_str());
    for (const ModelReport& r : reports) std::printf(" %14s", meV(stats_of(r), metric).c_str());
    std::printf("\n");
  };
  const std::pair<const char*, Metric> kinds[] = {
      {"RMSE", &analysis::ErrorStats::rmse}, {"MAE", &analysis::ErrorStats::mae}, {"max", &analysis::ErrorStats::max_abs}};
  for (const auto& [kind, metric] : kinds)
    row(std::string("energy/atom ") + kind, "meV/atom", [](const ModelReport& r) { return r.energy_per_atom; }, metric);
  for (const auto& [kind, metric] : kinds)
    row(std::string("force ") + kind, "meV/Å", [](const ModelReport& r) { return r.forces; }, metric);
  std::vector<std::string> elements;
  for (const ModelReport& r : reports)
    for (const auto& [element, stats] : r.forces_by_element)
      if (std::find(elements.begin(), elements.end(), element) == elements.end()) elements.push_back(element);
  for (const std::string& element : elements)
    for (int k = 0; k < 2; ++k)
      row("force " + std::string(kinds[k].first) + " " + element, "meV/Å",
          [&](const ModelReport& r) {
            const auto it = r.forces_by_element.find(element);
            return it == r.forces_by_element.end() ? analysis::ErrorStats() : it->second;
          },
          kinds[k].second);
  if (data.with_stress > 0)
    for (const auto& [kind, metric] : kinds)
      row(std::string("stress ") + kind, "meV/Å^3", [](const ModelReport& r) { return r.stress; }, metric);
  for (size_t m = 0; m < reports.size(); ++m)
    if (reports[m].stress_frames_without_model_virial > 0)
      std::printf("# model %zu: stress %s (%d frames)\n", m + 1, kStressUnavailable,
                  reports[m].stress_frames_without_model_virial);

  if (!reports.empty() && !reports[0].groups.empty()) {
    std::printf("\n%-24s %6s", "group", "frames");
    for (size_t m = 0; m < reports.size(); ++m)
      std::printf(" %s %s", padded("E meV/atom " + std::to_string(m + 1), 14, true).c_str(),
                  padded("F meV/Å " + std::to_string(m + 1), 14, true).c_str());
    std::printf("   (RMSE)\n");
    for (const auto& [name, first] : reports[0].groups) {
      std::printf("%-24s %6d", name.c_str(), first.frames);
      for (const ModelReport& r : reports) {
        const GroupErrors& g = r.groups.at(name);
        std::printf(" %14s %14s", meV(g.energy_per_atom, &analysis::ErrorStats::rmse).c_str(),
                    meV(g.forces, &analysis::ErrorStats::rmse).c_str());
      }
      std::printf("\n");
    }
  }

  for (size_t m = 0; m < reports.size(); ++m) {
    const std::vector<FrameError> frames = worst_frames(reports[m].frames, worst);
    if (frames.empty()) continue;
    std::printf("\nworst frames of model %zu (by %s):\n%6s %7s %7s %16s %s %s\n", m + 1,
                data.with_forces ? "force RMSE" : "energy error", "frame", "line", "atoms", "dE/atom meV",
                padded("force RMSE meV/Å", 18, true).c_str(), padded("max |dF| meV/Å", 18, true).c_str());
    for (const FrameError& f : frames) {
      std::printf("%6d %7d %7lld", f.frame, f.line, static_cast<long long>(f.n_atoms));
      if (f.energy_error_per_atom)
        std::printf(" %16.4f", 1000.0 * *f.energy_error_per_atom);
      else
        std::printf(" %16s", "-");
      std::printf(" %18s %18s\n", meV(f.forces, &analysis::ErrorStats::rmse).c_str(),
                  meV(f.forces, &analysis::ErrorStats::max_abs).c_str());
    }
  }
}

json::Value stats_json(const analysis::ErrorStats& stats) {
  if (stats.count() == 0) return json::Value();
  json::Value v = json::Value::make_object();
  v.set("count", json_integer(stats.count()));
  v.set("rmse", json_number(stats.rmse()));
  v.set("mae", json_number(stats.mae()));
  v.set("max", json_number(stats.max_abs()));
  return v;
}

json::Value report_json(const std::string& data_path, const DataSummary& data, const std::vector<ModelReport>& reports,
                        int worst, bool single_precision) {
  json::Value root = json::Value::make_object();
  json::Value units = json::Value::make_object();
  units.set("energy_per_atom", json::Value::make_string("eV/atom"));
  units.set("forces", json::Value::make_string("eV/Angstrom"));
  units.set("stress", json::Value::make_string("eV/Angstrom^3"));
  root.set("units", units);
  root.set("data", json::Value::make_string(data_path));
  root.set("n_frames", json_integer(data.frames));
  root.set("frames_with_energy", json_integer(data.with_energy));
  root.set("frames_with_forces", json_integer(data.with_forces));
  root.set("frames_with_stress", json_integer(data.with_stress));
  root.set("frames_without_labels", json_integer(data.unlabelled));
  json::Value models = json::Value::make_array();
  for (const ModelReport& r : reports) {
    json::Value m = json::Value::make_object();
    m.set("model", json::Value::make_string(r.spec.yaml));
    m.set("weights", json::Value::make_string(r.spec.weights));
    m.set("dtype", json::Value::make_string(single_precision ? "float32" : "float64"));
    m.set("energy_per_atom", stats_json(r.energy_per_atom));
    m.set("forces", stats_json(r.forces));
    json::Value by_element = json::Value::make_object();
    for (const auto& [element, stats] : r.forces_by_element) by_element.set(element, stats_json(stats));
    m.set("forces_by_element", by_element);
    m.set("stress", stats_json(r.stress));
    if (r.stress_frames_without_model_virial > 0) {
      m.set("stress_note", json::Value::make_string(kStressUnavailable));
      m.set("stress_frames_without_model_virial", json_integer(r.stress_frames_without_model_virial));
    }
    json::Value frames = json::Value::make_array();
    for (const FrameError& f : worst_frames(r.frames, worst)) {
      json::Value frame = json::Value::make_object();
      frame.set("frame", json_integer(f.frame));
      frame.set("line", json_integer(f.line));
      frame.set("n_atoms", json_integer(f.n_atoms));
      frame.set("energy_error_per_atom", f.energy_error_per_atom ? json_number(*f.energy_error_per_atom) : json::Value());
      frame.set("force_rmse", f.forces.count() ? json_number(f.forces.rmse()) : json::Value());
      frame.set("force_max", f.forces.count() ? json_number(f.forces.max_abs()) : json::Value());
      frames.items.push_back(frame);
    }
    m.set("worst_frames", frames);
    if (!r.groups.empty()) {
      json::Value groups = json::Value::make_object();
      for (const auto& [name, g] : r.groups) {
        json::Value group = json::Value::make_object();
        group.set("frames", json_integer(g.frames));
        group.set("energy_per_atom", stats_json(g.energy_per_atom));
        group.set("forces", stats_json(g.forces));
        groups.set(name, group);
      }
      m.set("groups", groups);
    }
    models.items.push_back(m);
  }
  root.set("models", models);
  return root;
}

void plot_parity(const std::string& png, const std::vector<ModelReport>& reports) {
  struct Panel {
    const char* title;
    const char* unit;
    std::vector<std::pair<double, double>> ModelReport::*points;
  };
  std::vector<Panel> panels;
  for (const Panel& p : {Panel{"Energy per atom", "eV/atom", &ModelReport::energy_parity},
                         Panel{"Force components", "eV/Å", &ModelReport::force_parity}})
    if (!(reports.front().*(p.points)).empty()) panels.push_back(p);
  if (panels.empty()) throw Error("no energies or forces to plot");
  std::ostringstream script;
  script.precision(12);
  script << "set terminal pngcairo size " << 600 * panels.size() << ",600\nset output " << gnuplot_string(png) << "\n";
  for (size_t p = 0; p < panels.size(); ++p)
    for (size_t m = 0; m < reports.size(); ++m) {
      script << "$panel" << p << "_model" << m << " << EOD\n";
      for (const auto& [label, predicted] : reports[m].*(panels[p].points)) script << label << ' ' << predicted << '\n';
      script << "EOD\n";
    }
  script << "set multiplot layout 1," << panels.size() << "\nset size square\nset key top left\nset grid\n";
  for (size_t p = 0; p < panels.size(); ++p) {
    script << "set title " << gnuplot_string(panels[p].title) << "\nset xlabel "
           << gnuplot_string(std::string("reference (") + panels[p].unit + ")") << "\nset ylabel "
           << gnuplot_string(std::string("model (") + panels[p].unit + ")") << "\nplot ";
    for (size_t m = 0; m < reports.size(); ++m)
      script << "$panel" << p << "_model" << m << " using 1:2 with points pt 7 ps 0.5 title "
             << gnuplot_string("model " + std::to_string(m + 1)) << ", ";
    script << "x with lines dt 2 lc rgb \"gray40\" title \"y = x\"\n";
  }
  script << "unset multiplot\n";
  run_gnuplot(script.str());
}

}  // namespace

int accuracy(int argc, char** argv) {
  std::vector<std::string> positional;
  std::vector<ModelSpec> extra_models;
  std::string json_path, plot_path, group_key;
  int worst = 5;
  bool single_precision = false;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "-h" || arg == "--help") {
        std::printf("%s", kUsage);
        return 0;
      } else if (arg == "--model") {
        const std::string yaml = option_value(i, argc, argv);
        extra_models.push_back({yaml, option_value(i, argc, argv)});
      } else if (arg == "--json") {
        json_path = option_value(i, argc, argv);
      } else if (arg == "--plot") {
        plot_path = option_value(i, argc, argv);
      } else if (arg == "--worst") {
        worst = positive_int_option("--worst", option_value(i, argc, argv));
      } else if (arg == "--group") {
        group_key = option_value(i, argc, argv);
      } else if (arg == "--float32") {
        single_precision = true;
      } else if (arg.size() > 1 && arg[0] == '-') {
        throw UsageError("unknown option '" + arg + "'");
      } else {
        positional.push_back(arg);
      }
    }
    if (positional.size() != 3)
      throw UsageError("expected MODEL.yaml WEIGHTS DATA.xyz, got " + std::to_string(positional.size()) + " arguments");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "klay bench accuracy: %s\n%s", e.what(), kUsage);
    return 2;
  }
  try {
    const std::string& data_path = positional[2];
    // The data first: a malformed file is reported before any model loads.
    const std::vector<md::LabelledFrame> frames = md::read_extended_xyz_frames(data_path);
    const DataSummary data = summarize(frames);
    if (data.with_energy == 0 && data.with_forces == 0)
      throw Error(data_path + ": no frame has an energy or forces to compare with (energy=... on the comment line, "
                              "a forces:R:3 column in Properties)");
    std::vector<ModelSpec> specs{{positional[0], positional[1]}};
    specs.insert(specs.end(), extra_models.begin(), extra_models.end());
    std::vector<ModelReport> reports;
    for (const ModelSpec& spec : specs) reports.push_back(evaluate_model(spec, single_precision, frames, data_path, group_key));
    print_table(data_path, data, reports, worst, single_precision);
    if (!json_path.empty()) write_json_file(json_path, report_json(data_path, data, reports, worst, single_precision));
    if (!plot_path.empty()) plot_parity(plot_path, reports);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "klay bench accuracy: %s\n", exception_message(e).c_str());
    return 1;
  }
  return 0;
}

}  // namespace klay::bench
