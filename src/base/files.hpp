// Whole-file reads for the runtime's readers (weights, JSON, extended XYZ), with one set of
// messages for the ways a path can be wrong.
#pragma once
#include <string>

namespace klay {

// The content of the file at `path`. `what` names the expected file ("weights file") in the
// errors: a missing, unreadable or empty file, and a directory, are reported as such.
std::string read_whole_file(const std::string& path, const std::string& what);

}  // namespace klay
