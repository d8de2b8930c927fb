// What `klay bench accuracy` and `klay bench speed` share: option parsing, JSON files written so
// that a reader never sees half a file, and PNG plots drawn by gnuplot (pngcairo).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "base/json.hpp"

namespace klay::bench {

// A command-line mistake: the command prints it with its usage and exits 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The value after option argv[i] (i is advanced); UsageError when it is missing.
const char* option_value(int& i, int argc, char** argv);
int positive_int_option(const char* option, const std::string& text);
double positive_real_option(const char* option, const std::string& text);

json::Value json_number(double value);  // null when not finite (JSON has no NaN)
json::Value json_integer(int64_t value);

// Writes PATH.tmp then renames it over PATH.
void write_json_file(const std::string& path, const json::Value& value);

// Feeds the script to `gnuplot`; throws klay::Error when gnuplot is missing or fails.
void run_gnuplot(const std::string& script);
// A string literal for a gnuplot script (titles, file names).
std::string gnuplot_string(const std::string& text);

int accuracy(int argc, char** argv);  // argv[0] = "accuracy"
int speed(int argc, char** argv);     // argv[0] = "speed"

}  // namespace klay::bench
