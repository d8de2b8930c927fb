#include "bench_speed/speed_summary.hpp"

#include <algorithm>

#include "analysis/error_stats.hpp"

namespace klay::bench_speed {

namespace {

const Measurement* find_measurement(const std::vector<Measurement>& all, RunKind kind, const Run& like) {
  for (const Measurement& m : all)
    if (m.ok && m.run.kind == kind && m.run.ranks == like.ranks && m.run.cells == like.cells &&
        (kind == RunKind::Baseline || m.run.dtype == like.dtype))
      return &m;
  return nullptr;
}

}  // namespace

std::optional<double> ratio_to_baseline(const std::vector<Measurement>& all, const Measurement& m) {
  if (m.run.kind == RunKind::Baseline) return std::nullopt;
  const Measurement* base = find_measurement(all, RunKind::Baseline, m.run);
  if (!base) return std::nullopt;
  return m.ms_per_step() / base->ms_per_step();
}

std::optional<double> ratio_to_staged(const std::vector<Measurement>& all, const Measurement& m) {
  if (m.run.kind != RunKind::Largest) return std::nullopt;
  const Measurement* staged = find_measurement(all, RunKind::Staged, m.run);
  if (!staged) return std::nullopt;
  return m.ms_per_step() / staged->ms_per_step();
}

std::vector<Series> series_of(const std::vector<Measurement>& all) {
  std::vector<Series> series;
  for (const Measurement& m : all) {
    if (!m.ok) continue;
    const std::string name = m.run.series();
    auto it = std::find_if(series.begin(), series.end(), [&](const Series& s) { return s.name == name; });
    if (it == series.end()) it = series.insert(series.end(), Series{name, {}, std::nullopt});
    it->points.push_back(&m);
  }
  for (Series& s : series) {
    std::vector<double> atoms, costs;
    for (const Measurement* m : s.points) {
      atoms.push_back(static_cast<double>(m->run.atoms()));
      costs.push_back(m->ms_per_step());
    }
    if (atoms.size() >= 2 && atoms.front() != atoms.back()) s.exponent = analysis::fitted_exponent(atoms, costs);
  }
  return series;
}

}  // namespace klay::bench_speed
