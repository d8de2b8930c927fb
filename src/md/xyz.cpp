#include "md/xyz.hpp"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "base/error.hpp"
#include "base/files.hpp"

namespace klay::md {

namespace {

double determinant(const std::array<std::array<double, 3>, 3>& m) {
  return m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
         m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
}

class XyzParser {
 public:
  XyzParser(const std::string& text, std::string source) : source_(std::move(source)) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      lines_.push_back(line);
    }
  }

  Structure parse() {
    if (lines_.empty()) fail(1, "empty file: expected the number of atoms on the first line");
    size_t next = 0;
    LabelledFrame frame = parse_frame(0, next);
    for (size_t k = next; k < lines_.size(); ++k)
      if (!trim(lines_[k]).empty())
        fail(static_cast<int>(k) + 1, "unexpected content after the " + std::to_string(frame.structure.size()) +
                                          " atoms (only single-frame files are read)");
    return std::move(frame.structure);
  }

  std::vector<LabelledFrame> parse_frames() {
    std::vector<LabelledFrame> frames;
    size_t k = 0;
    while (true) {
      while (k < lines_.size() && trim(lines_[k]).empty()) ++k;
      if (k >= lines_.size()) break;
      frames.push_back(parse_frame(k, k));
    }
    if (frames.empty()) fail(1, "no frames: expected the number of atoms on the first line");
    return frames;
  }

 private:
  struct Column {
    std::string name;
    char type;  // S, R, I, L
    int count;
  };

  std::string source_;
  std::vector<std::string> lines_;
  // The current frame's columns: first token index of species, pos and forces (-1 if absent).
  std::vector<Column> columns_;
  int species_column_ = -1, pos_column_ = -1, forces_column_ = -1;

  // The frame whose atom count is on line index `first`; `next` gets the line after it.
  LabelledFrame parse_frame(size_t first, size_t& next) {
    const int count_line = static_cast<int>(first) + 1;
    LabelledFrame frame;
    frame.line = count_line;
    const int64_t n = parse_count(count_line, trim(lines_[first]));
    if (lines_.size() < first + 2) fail(count_line + 1, "missing the comment line (Lattice=..., Properties=..., pbc=...)");
    parse_comment(count_line + 1, lines_[first + 1], frame);
    if (static_cast<int64_t>(lines_.size() - first) < 2 + n)
      fail(static_cast<int>(lines_.size()) + 1, "the file ends after " + std::to_string(lines_.size() - first - 2) +
                                                    " atom lines; line " + std::to_string(count_line) + " says " +
                                                    std::to_string(n));
    for (int64_t a = 0; a < n; ++a)
      parse_atom(count_line + 2 + static_cast<int>(a), lines_[first + 2 + a], frame);
    next = first + 2 + n;
    return frame;
  }

  [[noreturn]] void fail(int line, const std::string& message) const {
    throw Error(source_ + ":" + std::to_string(line) + ": " + message);
  }

  static std::string trim(const std::string& s) {
    size_t b = 0, e = s.size();
    while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
    return s.substr(b, e - b);
  }

  static std::vector<std::string> split(const std::string& s) {
    std::istringstream in(s);
    std::vector<std::string> out;
    for (std::string token; in >> token;) out.push_back(token);
    return out;
  }

  static bool equals_ignoring_case(const std::string& a, const char* b) {
    size_t i = 0;
    for (; i < a.size() && b[i]; ++i)
      if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
        return false;
    return i == a.size() && !b[i];
  }

  int64_t parse_count(int line, const std::string& text) const {
    char* end = nullptr;
    errno = 0;
    const long long n = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0 || n < 0)
      fail(line, "expected the number of atoms, got '" + text + "'");
    return n;
  }

  double parse_real(int line, const std::string& token, const std::string& what) const {
    char* end = nullptr;
    const double v = std::strtod(token.c_str(), &end);
    if (token.empty() || *end != '\0' || !std::isfinite(v))
      fail(line, what + ": '" + token + "' is not a finite number");
    return v;
  }

  // key=value pairs; values may be double-quoted; a key without '=' is a flag.
  std::vector<std::pair<std::string, std::string>> key_values(int line_number, const std::string& line) const {
    std::vector<std::pair<std::string, std::string>> out;
    size_t p = 0;
    while (p < line.size()) {
      while (p < line.size() && std::isspace(static_cast<unsigned char>(line[p]))) ++p;
      if (p >= line.size()) break;
      size_t k = p;
      while (k < line.size() && line[k] != '=' && !std::isspace(static_cast<unsigned char>(line[k]))) ++k;
      std::string key = line.substr(p, k - p), value;
      p = k;
      if (p < line.size() && line[p] == '=') {
        ++p;
        if (p < line.size() && line[p] == '"') {
          const size_t close = line.find('"', p + 1);
          if (close == std::string::npos) fail(line_number, "unterminated quote in the value of '" + key + "'");
          value = line.substr(p + 1, close - p - 1);
          p = close + 1;
        } else {
          size_t e = p;
          while (e < line.size() && !std::isspace(static_cast<unsigned char>(line[e]))) ++e;
          value = line.substr(p, e - p);
          p = e;
        }
      }
      out.emplace_back(key, value);
    }
    return out;
  }

  static int parse_flag(const std::string& token) {
    for (const char* t : {"T", "True", "true", "1"})
      if (token == t) return 1;
    for (const char* f : {"F", "False", "false", "0"})
      if (token == f) return 0;
    return -1;
  }

  void parse_comment(int line, const std::string& text, LabelledFrame& frame) {
    Structure& structure = frame.structure;
    std::string properties = "species:S:1:pos:R:3";
    bool has_pbc = false;
    std::array<bool, 3> pbc{};
    std::optional<std::array<double, 9>> stress;
    for (const auto& [key, value] : key_values(line, text)) {
      frame.info[key] = value;
      if (equals_ignoring_case(key, "Lattice")) {
        const auto tokens = split(value);
        if (tokens.size() != 9) fail(line, "Lattice needs 9 numbers (a, b, c as rows), got " + std::to_string(tokens.size()));
        for (int k = 0; k < 9; ++k) structure.cell.vectors[k / 3][k % 3] = parse_real(line, tokens[k], "Lattice");
        structure.has_lattice = true;
      } else if (equals_ignoring_case(key, "Properties")) {
        properties = value;
      } else if (equals_ignoring_case(key, "pbc")) {
        const auto tokens = split(value);
        if (tokens.size() != 3) fail(line, "pbc needs 3 flags (e.g. pbc=\"T T F\"), got '" + value + "'");
        for (int d = 0; d < 3; ++d) {
          const int flag = parse_flag(tokens[d]);
          if (flag < 0) fail(line, "pbc: '" + tokens[d] + "' is not T or F");
          pbc[d] = flag == 1;
        }
        has_pbc = true;
      } else if (key == "energy") {
        frame.energy = parse_real(line, value, "energy");
      } else if (key == "virial") {
        frame.virial = parse_tensor(line, value, "virial");
      } else if (key == "stress") {
        stress = parse_tensor(line, value, "stress");
      }
    }
    if (!has_pbc) pbc = {structure.has_lattice, structure.has_lattice, structure.has_lattice};
    if ((pbc[0] || pbc[1] || pbc[2]) && !structure.has_lattice)
      fail(line, "pbc says periodic but there is no Lattice=\"...\"");
    structure.cell.periodic = pbc;
    if (stress) {
      if (frame.virial) fail(line, "both virial= and stress= are given; keep one");
      if (!structure.has_lattice) fail(line, "stress= needs a Lattice to give the volume");
      const double volume = std::abs(determinant(structure.cell.vectors));
      std::array<double, 9> virial;
      for (int k = 0; k < 9; ++k) virial[k] = -(*stress)[k] * volume;
      frame.virial = virial;
    }
    parse_properties(line, properties);
  }

  // 9 numbers row-major, or 6 in Voigt order xx yy zz yz xz xy (ASE), as a symmetric 3x3.
  std::array<double, 9> parse_tensor(int line, const std::string& value, const std::string& what) const {
    const auto tokens = split(value);
    std::array<double, 9> t{};
    if (tokens.size() == 9) {
      for (int k = 0; k < 9; ++k) t[k] = parse_real(line, tokens[k], what);
    } else if (tokens.size() == 6) {
      static const int kVoigt[6][2] = {{0, 0}, {1, 1}, {2, 2}, {1, 2}, {0, 2}, {0, 1}};
      for (int v = 0; v < 6; ++v) {
        const double x = parse_real(line, tokens[v], what);
        t[3 * kVoigt[v][0] + kVoigt[v][1]] = t[3 * kVoigt[v][1] + kVoigt[v][0]] = x;
      }
    } else {
      fail(line, what + " needs 9 numbers (3x3, row-major) or 6 (Voigt xx yy zz yz xz xy), got " +
                     std::to_string(tokens.size()));
    }
    return t;
  }

  void parse_properties(int line, const std::string& text) {
    columns_.clear();
    species_column_ = pos_column_ = forces_column_ = -1;
    std::vector<std::string> fields;
    std::string field;
    std::istringstream in(text);
    while (std::getline(in, field, ':')) fields.push_back(field);
    if (fields.size() % 3 != 0)
      fail(line, "Properties must be name:type:count triples, got '" + text + "'");
    int token = 0;
    for (size_t f = 0; f < fields.size(); f += 3) {
      const std::string& type = fields[f + 1];
      if (type.size() != 1 || std::string("SRIL").find(type[0]) == std::string::npos)
        fail(line, "Properties: column '" + fields[f] + "' has type '" + type + "' (expected S, R, I or L)");
      char* end = nullptr;
      const long count = std::strtol(fields[f + 2].c_str(), &end, 10);
      if (*end != '\0' || count < 1)
        fail(line, "Properties: column '" + fields[f] + "' has count '" + fields[f + 2] + "'");
      columns_.push_back({fields[f], type[0], static_cast<int>(count)});
      if (fields[f] == "species") {
        if (type != "S" || count != 1) fail(line, "Properties: species must be species:S:1");
        species_column_ = token;
      } else if (fields[f] == "pos") {
        if (type != "R" || count != 3) fail(line, "Properties: pos must be pos:R:3");
        pos_column_ = token;
      } else if (fields[f] == "forces") {
        if (type != "R" || count != 3) fail(line, "Properties: forces must be forces:R:3");
        forces_column_ = token;
      }
      token += static_cast<int>(count);
    }
    if (species_column_ < 0) fail(line, "Properties has no species:S:1 column");
    if (pos_column_ < 0) fail(line, "Properties has no pos:R:3 column");
  }

  void parse_atom(int line_number, const std::string& line, LabelledFrame& frame) const {
    const auto tokens = split(line);
    size_t expected = 0;
    for (const Column& c : columns_) expected += c.count;
    if (tokens.size() != expected)
      fail(line_number, "expected " + std::to_string(expected) + " columns (Properties), got " +
                            std::to_string(tokens.size()));
    frame.structure.elements.push_back(tokens[species_column_]);
    for (int k = 0; k < 3; ++k)
      frame.structure.positions.push_back(parse_real(line_number, tokens[pos_column_ + k], "position"));
    if (forces_column_ >= 0)
      for (int k = 0; k < 3; ++k) frame.forces.push_back(parse_real(line_number, tokens[forces_column_ + k], "force"));
  }
};

}  // namespace

Structure parse_extended_xyz(const std::string& text, const std::string& source) {
  return XyzParser(text, source).parse();
}

Structure read_extended_xyz(const std::string& path) { return parse_extended_xyz(read_whole_file(path, "structure file"), path); }

std::vector<LabelledFrame> parse_extended_xyz_frames(const std::string& text, const std::string& source) {
  return XyzParser(text, source).parse_frames();
}

std::vector<LabelledFrame> read_extended_xyz_frames(const std::string& path) {
  return parse_extended_xyz_frames(read_whole_file(path, "structure file"), path);
}

}  // namespace klay::md
