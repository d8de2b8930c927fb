#include "analysis/error_stats.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "base/error.hpp"

namespace klay::analysis {

void ErrorStats::add(double predicted, double reference) {
  const double error = predicted - reference;
  ++count_;
  sum_squares_ += error * error;
  sum_abs_ += std::fabs(error);
  max_abs_ = std::max(max_abs_, std::fabs(error));
}

void ErrorStats::merge(const ErrorStats& other) {
  count_ += other.count_;
  sum_squares_ += other.sum_squares_;
  sum_abs_ += other.sum_abs_;
  max_abs_ = std::max(max_abs_, other.max_abs_);
}

double ErrorStats::rmse() const { return count_ ? std::sqrt(sum_squares_ / count_) : 0.0; }

double ErrorStats::mae() const { return count_ ? sum_abs_ / count_ : 0.0; }

double fitted_exponent(const std::vector<double>& sizes, const std::vector<double>& costs) {
  if (sizes.size() != costs.size())
    throw Error("fitted_exponent: " + std::to_string(sizes.size()) + " sizes but " + std::to_string(costs.size()) +
                " costs");
  std::vector<double> x, y;
  for (size_t k = 0; k < sizes.size(); ++k) {
    if (!(sizes[k] > 0) || !(costs[k] > 0) || !std::isfinite(sizes[k]) || !std::isfinite(costs[k]))
      throw Error("fitted_exponent: sizes and costs must be positive and finite");
    x.push_back(std::log(sizes[k]));
    y.push_back(std::log(costs[k]));
  }
  const double n = static_cast<double>(x.size());
  double mean_x = 0, mean_y = 0;
  for (size_t k = 0; k < x.size(); ++k) {
    mean_x += x[k] / n;
    mean_y += y[k] / n;
  }
  double sxx = 0, sxy = 0;
  for (size_t k = 0; k < x.size(); ++k) {
    sxx += (x[k] - mean_x) * (x[k] - mean_x);
    sxy += (x[k] - mean_x) * (y[k] - mean_y);
  }
  if (x.size() < 2 || sxx == 0) throw Error("fitted_exponent: needs at least two distinct sizes");
  return sxy / sxx;
}

}  // namespace klay::analysis
