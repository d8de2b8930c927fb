#include "base/error.hpp"

#include <c10/util/Exception.h>

#include <vector>

#include "klay_suggest.h"

namespace klay {

std::string exception_message(const std::exception& error) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&error);
  return c10_error ? c10_error->what_without_backtrace() : error.what();
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::vector<const char*> names;
  names.reserve(candidates.size());
  for (const std::string& candidate : candidates) names.push_back(candidate.c_str());
  const char* best = klay_closest_name(word.c_str(), names.data(), names.size());
  return best ? best : std::string();
}

}  // namespace klay
