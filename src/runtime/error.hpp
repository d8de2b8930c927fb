// The runtime's one exception type. Messages carry "file:line:col: " when they come from YAML.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include "klay_builder.h"

namespace klay {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What an exception says, for one line of a message: libtorch's errors without their backtrace.
std::string exception_message(const std::exception& error);

// "file:line:col: " prefix for a YAML mark ("" when the mark is unknown).
std::string where(const klay_mark& mark);

// Closest candidate by edit distance, or "" if none is close enough to suggest.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace klay
