// Statistics the benchmarks report, kept torch-free so they are checked on hand-made numbers:
// RMSE / MAE / largest error of (predicted - reference) pairs, and the exponent p of a cost that
// grows like size^p.
#pragma once
#include <cstdint>
#include <vector>

namespace klay::analysis {

class ErrorStats {
 public:
  void add(double predicted, double reference);
  void merge(const ErrorStats& other);
  int64_t count() const { return count_; }
  // All three are 0 for an empty set; callers check count() before reporting.
  double rmse() const;
  double mae() const;
  double max_abs() const { return max_abs_; }

 private:
  int64_t count_ = 0;
  double sum_squares_ = 0;
  double sum_abs_ = 0;
  double max_abs_ = 0;
};

// Least-squares slope of log(cost) against log(size). Throws klay::Error when fewer than two
// distinct sizes are given or a size or cost is not positive (no logarithm).
double fitted_exponent(const std::vector<double>& sizes, const std::vector<double>& costs);

}  // namespace klay::analysis
