// The one exception type of every part above base. Messages carry "file:line:col: " when they come
// from YAML: that prefix is added by whoever holds the YAML node (layers/config.hpp's where()).
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

namespace klay {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What an exception says, for one line of a message: libtorch's errors without their backtrace.
std::string exception_message(const std::exception& error);

// Closest candidate by edit distance, or "" if none is close enough to suggest (klay_suggest.h:
// the YAML front end's suggestions are the same).
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace klay
