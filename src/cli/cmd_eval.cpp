// `klay eval MODEL.yaml WEIGHTS STRUCTURE.xyz [--json] [--float32]`: energy, forces and per-atom
// energies of one extended-XYZ structure, with the graph built as in MD (src/md/structure_eval);
// --json adds the virial (sum of r·F as LAMMPS reports it) when the graph uses padding images.
// Text output for people (what was inferred about the model first, as # comments); --json for
// programs, floats with 17 significant digits so they round-trip.
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/commands.hpp"
#include "md/md_model.hpp"
#include "md/structure_eval.hpp"
#include "md/xyz.hpp"
#include "base/error.hpp"

namespace {

constexpr const char* kUsage = "usage: klay eval MODEL.yaml WEIGHTS STRUCTURE.xyz [--json] [--float32]\n";

void print_json(const klay::md::Structure& s, const klay::md::StructureResult& r) {
  std::printf("{\n  \"energy\": %.17g,\n  \"n_atoms\": %lld,\n  \"elements\": [", r.energy,
              static_cast<long long>(s.size()));
  for (int64_t a = 0; a < s.size(); ++a) std::printf("%s\"%s\"", a ? ", " : "", s.elements[a].c_str());
  std::printf("],\n  \"forces\": [");
  for (int64_t a = 0; a < s.size(); ++a)
    std::printf("%s[%.17g, %.17g, %.17g]", a ? ", " : "", r.forces[3 * a], r.forces[3 * a + 1], r.forces[3 * a + 2]);
  std::printf("]");
  if (!r.per_atom_energy.empty()) {
    std::printf(",\n  \"per_atom_energy\": [");
    for (int64_t a = 0; a < s.size(); ++a) std::printf("%s%.17g", a ? ", " : "", r.per_atom_energy[a]);
    std::printf("]");
  }
  if (!r.virial.empty()) {
    std::printf(",\n  \"virial\": [");
    for (int k = 0; k < 9; ++k) std::printf("%s%.17g", k ? ", " : "", r.virial[k]);
    std::printf("]");
  }
  std::printf(",\n  \"graph\": \"%s\",\n  \"n_model_atoms\": %lld,\n  \"n_edges\": %lld\n}\n", r.method.c_str(),
              static_cast<long long>(r.n_model_atoms), static_cast<long long>(r.n_edges));
}

void print_text(const klay::md::MdModel& model, const klay::md::Structure& s, const klay::md::StructureResult& r) {
  std::string facts = model.describe();
  for (size_t start = 0; start < facts.size();) {
    const size_t end = facts.find('\n', start);
    std::printf("# %s\n", facts.substr(start, end - start).c_str());
    start = end == std::string::npos ? facts.size() : end + 1;
  }
  std::printf("# graph: %s, %lld edges\n", r.method.c_str(), static_cast<long long>(r.n_edges));
  std::printf("energy %.17g\n", r.energy);
  std::printf("%6s %-4s %24s %24s %24s%s\n", "atom", "el", "fx", "fy", "fz",
              r.per_atom_energy.empty() ? "" : "                   energy");
  for (int64_t a = 0; a < s.size(); ++a) {
    std::printf("%6lld %-4s %24.16e %24.16e %24.16e", static_cast<long long>(a + 1), s.elements[a].c_str(),
                r.forces[3 * a], r.forces[3 * a + 1], r.forces[3 * a + 2]);
    if (!r.per_atom_energy.empty()) std::printf(" %24.16e", r.per_atom_energy[a]);
    std::printf("\n");
  }
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  std::vector<std::string> paths;
  bool json = false, single = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (std::strcmp(argv[i], "--float32") == 0) {
      single = true;
    } else if (std::strcmp(argv[i], "-h") == 0 || std::strcmp(argv[i], "--help") == 0) {
      std::printf("%s", kUsage);
      return 0;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      std::fprintf(stderr, "klay eval: unknown option '%s'\n%s", argv[i], kUsage);
      return 2;
    } else {
      paths.emplace_back(argv[i]);
    }
  }
  if (paths.size() != 3) {
    std::fprintf(stderr, "klay eval: expected 3 arguments, got %zu\n%s", paths.size(), kUsage);
    return 2;
  }
  try {
    // The structure first: a malformed file is reported without waiting for the model to load.
    const klay::md::Structure structure = klay::md::read_extended_xyz(paths[2]);
    auto model = klay::md::MdModel::load(paths[0], paths[1], single);
    const klay::md::StructureResult result = klay::md::evaluate_structure(*model, structure);
    if (json)
      print_json(structure, result);
    else
      print_text(*model, structure, result);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "klay eval: %s\n", klay::exception_message(e).c_str());
    return 1;
  }
  return 0;
}
