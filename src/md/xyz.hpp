// Extended XYZ reader (one frame): the atom count, a comment line of key=value pairs
// (Lattice="ax ay az bx by bz cx cy cz", Properties=species:S:1:pos:R:3:..., pbc="T T T"), one line
// per atom. Without Properties the columns are "species:S:1:pos:R:3"; without pbc a structure with
// a Lattice is periodic in all three directions and one without is an isolated cluster (the ASE
// conventions). Errors name the file and line. Torch-free.
#pragma once
#include <array>
#include <map>
#include <optional>
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

// One configuration of a multi-frame file with the labels ASE writes: `energy=` on the comment
// line, a `forces:R:3` column, and the stress as `virial="9 numbers"` (eV) or `stress="9 or 6
// (Voigt xx yy zz yz xz xy) numbers"` (eV/Å^3, ASE's sign: stress = -virial / volume).
struct LabelledFrame {
  Structure structure;
  int line = 0;                      // line of the frame's atom count, for messages
  std::optional<double> energy;      // eV
  std::vector<double> forces;        // [n][3] eV/Å, empty when the frame has none
  std::optional<std::array<double, 9>> virial;  // eV, row-major; from `virial` or -stress·V
  std::map<std::string, std::string> info;      // every comment-line key=value, keys as written
};

// Every frame of the text (blank lines between frames are allowed). Labels are optional per frame;
// callers decide what they require.
std::vector<LabelledFrame> parse_extended_xyz_frames(const std::string& text, const std::string& source);
std::vector<LabelledFrame> read_extended_xyz_frames(const std::string& path);

}  // namespace klay::md
