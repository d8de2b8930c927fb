// The values of a kernel plan's non-zero coupling entries (stored in double), converted once to
// the type an evaluation runs in.
#pragma once
#include <vector>

namespace klay::kernels {

template <typename T, typename Entry>
std::vector<T> entry_values(const std::vector<Entry>& entries) {
  std::vector<T> values;
  values.reserve(entries.size());
  for (const Entry& e : entries) values.push_back(static_cast<T>(e.value));
  return values;
}

}  // namespace klay::kernels
