// Reading the conformance reference.json files in tests (through the runtime's JSON reader).
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/json.hpp"

namespace klay_test {

using klay::json::Value;

// Names a test parameterised by conformance case after the case's folder, so that ctest lists
// ".../model_nequip2_si8" instead of ".../0".
inline std::string case_folder_name(const ::testing::TestParamInfo<const char*>& info) { return info.param; }

inline const Value& member(const Value& v, const std::string& key) {
  const Value* m = v.find(key);
  if (!m) throw std::runtime_error("reference.json: no key '" + key + "'");
  return *m;
}

// Every number of a (nested) list, or of a tensor {"dtype", "shape", "data"}, in order.
inline std::vector<double> numbers(const Value& v) {
  if (const Value* data = v.find("data")) return numbers(*data);
  std::vector<double> out;
  if (v.is_number()) out.push_back(v.as_double());
  for (const Value& item : v.items) {
    const std::vector<double> inner = numbers(item);
    out.insert(out.end(), inner.begin(), inner.end());
  }
  return out;
}

inline std::vector<int64_t> integers(const Value& v) {
  std::vector<int64_t> out;
  for (double x : numbers(v)) out.push_back(static_cast<int64_t>(x));
  return out;
}

inline Value read_reference(const std::string& case_name) {
  return klay::json::parse_file(std::string(KLAY_CONFORMANCE_DIR) + "/" + case_name + "/reference.json");
}

}  // namespace klay_test
