// bench_md_step: one MD force evaluation (energy + forces through autograd, as pair_style klay
// runs it) of a model on a diamond-silicon crystal, three ways interleaved in one process: as MD
// runs it (fused convolution kernels, dead features skipped: Layer::restricted_to), with every
// feature computed, and with every feature on the composite ATen path (the runtime before the
// kernels); --profile adds the ATen operators that take the time (self time, the autograd
// profiler's push/pop ranges). --blocks instead interleaves 1 thread against 2 and the whole
// evaluation against spatial blocks (MdModel::set_spatial_blocks), for each size of --cells.
//
//   bench_md_step [MODEL.yaml WEIGHTS] [--cells N] [--threads T] [--rounds R] [--float32] [--profile]
//                 [--md-only]   (only the way MD runs it: for perf record)
//   bench_md_step --blocks [--cells N,N,...] [--block-atoms A] [--rounds R] [--float32]
//
// The structure is n³ conventional cells (8n³ atoms, default 4: 512 atoms;
// src/testing/diamond_frames.hpp) displaced by 0.05 Å, with periodic images and staged graphs
// built exactly as `klay eval` does.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include "bench_common.hpp"
#include "testing/diamond_frames.hpp"
#include "klay.h"
#include "kernels/uvu_convolution.hpp"
#include "md/md_model.hpp"
#include "md/spatial_blocks.hpp"
#include "md/structure_eval.hpp"
#include "runtime/model.hpp"
#include "base/error.hpp"

namespace klay::bench {
namespace {

struct StepOptions {
  std::string yaml = std::string(KLAY_EXAMPLES_DIR) + "/si/model.yaml";
  std::string weights = std::string(KLAY_EXAMPLES_DIR) + "/si/model.pth";
  int cells = 4;
  std::vector<int> block_cells;  // --blocks: the sizes (cells per edge)
  std::optional<int64_t> block_atoms;  // the model's default_block_atoms() when not given
  int rounds = 10;
  bool float32 = false, profile = false, quick = false, md_only = false, blocks = false;
  Options common;
};

[[noreturn]] void usage(int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: bench_md_step [MODEL.yaml WEIGHTS] [--cells N] [--threads T] [--rounds R] [--float32] "
               "[--profile] [--quick] [--md-only]\n"
               "       bench_md_step [MODEL.yaml WEIGHTS] --blocks [--cells N,N,...] [--block-atoms A] [--rounds R] "
               "[--float32]\n");
  std::exit(code);
}

StepOptions parse(int argc, char** argv) {
  StepOptions o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) usage(2);
      return std::atoi(argv[++i]);
    };
    if (a == "--cells") {
      if (i + 1 >= argc) usage(2);
      const std::string list = argv[++i];
      o.block_cells.clear();
      for (size_t begin = 0; begin <= list.size();) {
        const size_t end = std::min(list.find(',', begin), list.size());
        o.block_cells.push_back(std::atoi(list.substr(begin, end - begin).c_str()));
        if (o.block_cells.back() < 1) usage(2);
        begin = end + 1;
      }
      o.cells = o.block_cells.front();
    }
    else if (a == "--block-atoms") {
      o.block_atoms = value();
      if (*o.block_atoms < 0) usage(2);
    }
    else if (a == "--blocks") o.blocks = true;
    else if (a == "--threads") o.common.threads = value();
    else if (a == "--rounds") o.rounds = value();
    else if (a == "--float32") o.float32 = true;
    else if (a == "--profile") o.profile = true;
    else if (a == "--quick") o.quick = true;
    else if (a == "--md-only") o.md_only = true;
    else if (a == "--help") usage(0);
    else if (!a.empty() && a[0] == '-') usage(2);
    else positional.push_back(a);
  }
  if (positional.size() == 2) {
    o.yaml = positional[0];
    o.weights = positional[1];
  } else if (!positional.empty()) {
    usage(2);
  }
  if (o.quick) o.cells = 1, o.rounds = 1, o.block_cells = {2};
  if (o.block_cells.empty()) o.block_cells = {o.cells};
  if (o.cells < 1 || o.rounds < 1 || (o.block_cells.size() > 1 && !o.blocks)) usage(2);
  return o;
}

// Self time (own time minus that of the ranges it encloses) per operator name, in ms, over all
// profiled calls, with the number of calls.
void print_profile(const torch::autograd::profiler::thread_event_lists& lists, int evaluations) {
  using torch::autograd::profiler::EventKind;
  struct Total {
    double self_us = 0;
    int64_t calls = 0;
    int64_t bytes = 0;  // allocated directly inside (not in enclosed ranges)
  };
  std::map<std::string, Total> totals, layers;  // layers: inclusive time of each model layer's forward
  double all_us = 0;
  int64_t allocations = 0, allocated_bytes = 0;
  for (const auto& list : lists) {
    struct Open {
      std::string name;
      double start_us, children_us;
    };
    std::vector<Open> stack;
    for (const auto& event : list) {
      if (event.kind() == EventKind::MemoryAlloc && event.cpuMemoryUsage() > 0) {
        ++allocations;
        allocated_bytes += event.cpuMemoryUsage();
        if (!stack.empty()) totals[stack.back().name].bytes += event.cpuMemoryUsage();
      }
      if (event.kind() == EventKind::PushRange) {
        stack.push_back({event.name(), static_cast<double>(event.cpuUs()), 0.0});
      } else if (event.kind() == EventKind::PopRange && !stack.empty()) {
        const Open open = stack.back();
        stack.pop_back();
        const double elapsed = static_cast<double>(event.cpuUs()) - open.start_us;
        Total& t = totals[open.name];
        t.self_us += elapsed - open.children_us;
        ++t.calls;
        if (open.name.rfind("klay layer ", 0) == 0) {
          layers[open.name.substr(11)].self_us += elapsed;
          ++layers[open.name.substr(11)].calls;
        }
        if (stack.empty()) all_us += elapsed;
        else stack.back().children_us += elapsed;
      }
    }
  }
  std::vector<std::pair<std::string, Total>> rows(totals.begin(), totals.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.self_us > b.second.self_us; });
  std::printf("\nprofile over %d evaluations (autograd profiler; its own overhead inflates small ops):\n", evaluations);
  std::printf("%-48s %12s %8s %10s %14s\n", "operator", "self ms/eval", "%", "calls/eval", "MiB alloc/eval");
  for (size_t k = 0; k < rows.size() && k < 30; ++k)
    std::printf("%-48s %12.3f %7.1f%% %10.1f %14.2f\n", rows[k].first.substr(0, 48).c_str(),
                rows[k].second.self_us / 1000.0 / evaluations, 100.0 * rows[k].second.self_us / all_us,
                static_cast<double>(rows[k].second.calls) / evaluations,
                static_cast<double>(rows[k].second.bytes) / evaluations / (1024.0 * 1024.0));
  std::printf("\nallocations: %.0f per evaluation, %.1f MiB allocated per evaluation (freed ones reused: "
              "klay_keep_freed_memory)\n",
              static_cast<double>(allocations) / evaluations,
              static_cast<double>(allocated_bytes) / evaluations / (1024.0 * 1024.0));
  std::printf("\n%-48s %12s %8s %10s\n", "layer (forward, ops inside included)", "ms/eval", "%", "calls/eval");
  for (const auto& [name, t] : layers)
    std::printf("%-48s %12.3f %7.1f%% %10.1f\n", name.substr(0, 48).c_str(), t.self_us / 1000.0 / evaluations,
                100.0 * t.self_us / all_us, static_cast<double>(t.calls) / evaluations);
}

// The process's resident and peak resident memory in MiB (Linux /proc/self/status), or -1.
std::pair<double, double> resident_mib() {
  std::FILE* status = std::fopen("/proc/self/status", "r");
  double rss = -1, peak = -1;
  if (!status) return {rss, peak};
  char line[256];
  while (std::fgets(line, sizeof line, status)) {
    long kib = 0;
    if (std::sscanf(line, "VmRSS: %ld kB", &kib) == 1) rss = kib / 1024.0;
    if (std::sscanf(line, "VmHWM: %ld kB", &kib) == 1) peak = kib / 1024.0;
  }
  std::fclose(status);
  return {rss, peak};
}

std::string load_average() {
  std::FILE* file = std::fopen("/proc/loadavg", "r");
  char text[128] = "?";
  if (file) {
    if (!std::fgets(text, sizeof text, file)) text[0] = 0;
    std::fclose(file);
  }
  std::string line = text;
  if (!line.empty() && line.back() == '\n') line.pop_back();
  return line;
}

// Issue #14's thread and size targets: for each size, 1 thread against 2 and the whole evaluation
// against spatial blocks, interleaved round by round in this one process (the same load for all).
// Each way is evaluated once untimed after switching the thread count and the blocks, so the
// timing holds no switching cost.
void run_blocks(const StepOptions& o) {
  auto model = md::MdModel::load(o.yaml, o.weights, o.float32);
  const int64_t block_atoms = o.block_atoms.value_or(model->default_block_atoms());
  std::printf("model:      %s %s (%s), spatial blocks of at most %ld owned atoms\n", o.yaml.c_str(),
              o.weights.c_str(), o.float32 ? "float32" : "float64", static_cast<long>(block_atoms));
  struct Way {
    const char* name;
    int threads;
    bool blocks;
  };
  const Way ways[] = {{"1 thread, whole", 1, false},
                      {"1 thread, blocks", 1, true},
                      {"2 threads, whole", 2, false},
                      {"2 threads, blocks", 2, true}};
  for (int cells : o.block_cells) {
    std::mt19937_64 generator(1);
    const md::Structure crystal = diamond::distorted_cell(cells, {1.0, 1.0, 1.0}, generator, 0.05);
    const md::PreparedStructure prepared = md::prepare_structure(*model, crystal);
    const md::AtomsView atoms = prepared.view();
    std::vector<double> forces(3 * prepared.n_model_atoms());
    std::printf("\n%ld owned atoms, %ld with images, %ld edges; load average before: %s\n",
                static_cast<long>(prepared.n_cell_atoms), static_cast<long>(prepared.n_model_atoms()),
                static_cast<long>(atoms.n_edges), load_average().c_str());
    auto evaluate = [&] {
      md::ResultsView results;
      results.forces = forces.data();
      model->compute(atoms, results);
      return results.energy;
    };
    std::vector<double> ms[4], energy(4);
    for (int r = 0; r < o.rounds + 1; ++r)  // round 0 warms up
      for (int w = 0; w < 4; ++w) {
        use_threads(ways[w].threads);
        model->set_spatial_blocks(ways[w].blocks, block_atoms);
        energy[w] = evaluate();
        const double t = time_once_ms(evaluate);
        if (r > 0) ms[w].push_back(t);
      }
    std::printf("energy + forces per evaluation, median of %d interleaved rounds; load average after: %s\n",
                o.rounds, load_average().c_str());
    const double baseline = median_ms(ms[0]);
    for (int w = 0; w < 4; ++w) {
      use_threads(ways[w].threads);
      const int64_t blocks = ways[w].blocks ? md::spatial_block_count(atoms.n_owned, ways[w].threads, block_atoms) : 1;
      const double median = median_ms(ms[w]);
      std::printf("  %-20s %3ld block(s) %10.3f ms  speed-up over 1 thread whole %5.2fx   energy %.12f eV\n",
                  ways[w].name, static_cast<long>(blocks), median, baseline / median, energy[w]);
    }
    std::printf("  2 threads blocks / 1 thread blocks: %.2fx faster; 2 threads whole / 1 thread whole: %.2fx faster\n",
                median_ms(ms[1]) / median_ms(ms[3]), median_ms(ms[0]) / median_ms(ms[2]));
  }
}

int run(int argc, char** argv) {
  const StepOptions o = parse(argc, argv);
  print_machine(o.common);
  // As pair_style klay does: freed memory stays mapped for the next evaluation.
  std::printf("allocator:  freed memory kept for reuse (klay_keep_freed_memory: %s)\n",
              klay_keep_freed_memory() == 0 ? "on" : "not available");
  if (o.blocks) {
    run_blocks(o);
    return 0;
  }
  auto model = md::MdModel::load(o.yaml, o.weights, o.float32);
  auto every_feature = md::MdModel::load(o.yaml, o.weights, o.float32);
  every_feature->model().set_feature_pruning(false);
  // The other ratios, measured in the same rounds: float32 against float64, 2 threads
  // against 1.
  const bool compare_float32 = !o.float32 && !o.md_only, compare_threads = o.common.threads == 1 && !o.md_only;
  auto single = compare_float32 ? md::MdModel::load(o.yaml, o.weights, true) : nullptr;
  std::mt19937_64 generator(1);
  const md::Structure crystal = diamond::distorted_cell(o.cells, {1.0, 1.0, 1.0}, generator, 0.05);
  const md::PreparedStructure prepared = md::prepare_structure(*model, crystal);
  const md::AtomsView atoms = prepared.view();
  std::vector<double> forces(3 * prepared.n_model_atoms());
  std::printf("model:      %s %s (%s)\n", o.yaml.c_str(), o.weights.c_str(), o.float32 ? "float32" : "float64");
  std::printf("structure:  %ld owned atoms, %ld with images, %ld edges in the largest graph\n",
              static_cast<long>(prepared.n_cell_atoms), static_cast<long>(prepared.n_model_atoms()),
              static_cast<long>(atoms.n_edges));

  enum Way { kAsMd, kFloat32, kTwoThreads, kEveryFeature, kComposite, kWays };
  auto evaluate = [&](Way way) {
    kernels::set_fused_kernels_enabled(way != kComposite);
    if (way == kTwoThreads) use_threads(2);
    md::ResultsView results;
    results.forces = forces.data();
    md::MdModel& m = way == kFloat32 ? *single : way == kEveryFeature || way == kComposite ? *every_feature : *model;
    m.compute(atoms, results);
    kernels::set_fused_kernels_enabled(true);
    if (way == kTwoThreads) use_threads(o.common.threads);
    return results.energy;
  };
  std::vector<Way> ways{kAsMd};
  if (compare_float32) ways.push_back(kFloat32);
  if (compare_threads) ways.push_back(kTwoThreads);
  if (!o.md_only) ways.insert(ways.end(), {kEveryFeature, kComposite});
  double energy[kWays] = {};
  for (Way way : ways) energy[way] = evaluate(way);
  std::vector<double> ms[kWays];
  std::pair<double, double> memory_after_warm_up;
  for (int r = 0; r < o.rounds + 1; ++r) {  // round 0 warms up
    for (Way way : ways) {
      const double t = time_once_ms([&] { evaluate(way); });
      if (r > 0) ms[way].push_back(t);
    }
    if (r == 0) memory_after_warm_up = resident_mib();
  }
  const std::pair<double, double> memory_at_end = resident_mib();
  std::printf("\nenergy + forces per evaluation (median of %d interleaved rounds; ratio: time / first row's):\n",
              o.rounds);
  const char* names[kWays] = {"as MD runs it (fused, dead features skipped)", "  the same in float32",
                              "  the same with 2 threads", "fused, every feature", "composite ATen, every feature"};
  const double first = median_ms(ms[kAsMd]);
  for (Way w : ways) {
    const double median = median_ms(ms[w]);
    std::printf("  %-46s %10.3f ms  %6.2fx   energy %.12f eV\n", names[w], median, median / first, energy[w]);
  }
  std::printf("  resident memory after the warm-up round %.1f MiB (peak %.1f), after %d more rounds %.1f MiB "
              "(peak %.1f)\n",
              memory_after_warm_up.first, memory_after_warm_up.second, o.rounds, memory_at_end.first,
              memory_at_end.second);
  if (!o.md_only)
    std::printf("  largest |energy difference| to the first, float64: %.1e eV\n",
                std::max(std::abs(energy[kEveryFeature] - energy[kAsMd]),
                         std::abs(energy[kComposite] - energy[kAsMd])));
  const int64_t reused = model->model().reused_row_calls(), restricted = model->model().restricted_calls();
  evaluate(kAsMd);
  std::printf("  per-edge layer calls answered from the largest staged graph's rows: %ld per evaluation\n",
              static_cast<long>(model->model().reused_row_calls() - reused));
  std::printf("  layer calls computing only the features their readers read: %ld per evaluation\n",
              static_cast<long>(model->model().restricted_calls() - restricted));

  if (o.profile) {
    const int evaluations = o.rounds;
    torch::profiler::impl::ProfilerConfig config(torch::profiler::impl::ProfilerState::CPU,
                                                 /*report_input_shapes=*/false, /*profile_memory=*/true);
    torch::autograd::profiler::TLSLegacyProfilerGuard guard(
        config, [&](const torch::autograd::profiler::thread_event_lists& lists) { print_profile(lists, evaluations); });
    for (int r = 0; r < evaluations; ++r) evaluate(kAsMd);
  }
  return 0;
}

}  // namespace
}  // namespace klay::bench

int main(int argc, char** argv) {
  try {
    return klay::bench::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_md_step: %s\n", e.what());
    return 1;
  }
}
