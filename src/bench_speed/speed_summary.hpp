// What a set of finished speed runs says together: each model run against the baseline and the
// largest graph against staged graphs at the same size and rank count, and per series the cost
// exponent p of ms/step ∝ atoms^p (a least-squares fit on log-log).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "bench_speed/speed_harness.hpp"

namespace klay::bench_speed {

// ms/step of a model run over the baseline's; none for the baseline itself or when it is missing.
std::optional<double> ratio_to_baseline(const std::vector<Measurement>& all, const Measurement& m);
// ms/step of a largest-graph run over the staged run's; none for other runs or when it is missing.
std::optional<double> ratio_to_staged(const std::vector<Measurement>& all, const Measurement& m);

struct Series {
  std::string name;                         // Run::series()
  std::vector<const Measurement*> points;   // the finished runs, in size order
  std::optional<double> exponent;           // when at least two sizes were measured
};

// The finished runs grouped by series, in the order the series first appear.
std::vector<Series> series_of(const std::vector<Measurement>& all);

}  // namespace klay::bench_speed
