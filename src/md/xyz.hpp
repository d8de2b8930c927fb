// Extended XYZ reader (one frame): the atom count, a comment line of key=value pairs
// (Lattice="ax ay az bx by bz cx cy cz", Properties=species:S:1:pos:R:3:..., pbc="T T T"), one line
// per atom. Without Properties the columns are "species:S:1:pos:R:3"; without pbc a structure with
// a Lattice is periodic in all three directions and one without is an isolated cluster (the ASE
// conventions). Errors name the file and line. Torch-free.
#pragma once
#include <string>
#include <vector>

#include "md/neighbors.hpp"

namespace klay::md {

struct Structure {
  std::vector<std::string> elements;  // per atom, as written ("Si")
  std::vector<double> positions;      // [n][3]
  Cell cell;                          // all-zero and non-periodic without a Lattice
  bool has_lattice = false;
  int64_t size() const { return static_cast<int64_t>(elements.size()); }
};

// Throws klay::Error "SOURCE:LINE: message".
Structure parse_extended_xyz(const std::string& text, const std::string& source);
Structure read_extended_xyz(const std::string& path);

}  // namespace klay::md
