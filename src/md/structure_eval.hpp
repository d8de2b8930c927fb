// Energy and forces of one structure (an extended-XYZ file's atoms and cell), the way `klay eval`
// and the tests run a model outside MD:
//  * a model with shifts and a single graph input gets the periodic neighbour list of the unit
//    cell with its image shifts (the conformance "model_*" convention), no ghost atoms;
//  * any other model gets padding atoms (periodic images within D·r_cut + margin) and staged
//    graphs, and the images' forces are folded back onto their unit-cell atoms.
#pragma once
#include <string>
#include <vector>

#include "md/md_model.hpp"
#include "md/xyz.hpp"

namespace klay::md {

struct StructureResult {
  double energy = 0;
  std::vector<double> forces;           // [n][3] on the unit-cell atoms
  std::vector<double> per_atom_energy;  // [n], empty when the model does not give them
  // [3][3] row-major and symmetric, eV: the runtime's virial over the model's atoms (unit cell +
  // padding images, md/virial.hpp), the periodic system's virial (LAMMPS's sum r·F = -stress·V).
  // Empty for the shifts graph.
  std::vector<double> virial;
  std::string method;                   // how the graph was built, for the report
  int64_t n_model_atoms = 0;            // atoms fed to the model (unit cell + padding)
  int64_t n_edges = 0;                  // edges of the largest graph
};

StructureResult evaluate_structure(MdModel& model, const Structure& structure);

// A structure made ready to be fed many times (training, src/fit), with the graph evaluate_structure
// builds, fed only the atoms it reaches: the model's atoms (unit cell, then the padding images the
// staged graphs reach, S_D), species codes, staged graphs or
// the periodic graph with shifts, and which unit-cell atom each model atom is.
struct PreparedStructure {
  int64_t n_cell_atoms = 0;
  std::vector<double> coords;        // [n_model_atoms][3]
  std::vector<int64_t> species;      // [n_model_atoms], empty when the model takes none
  std::vector<int64_t> edge_pairs;   // [n_edges][2]
  std::vector<int64_t> stage_edges;  // G_k = the first stage_edges[k] pairs
  std::vector<double> shifts;        // [n_edges][3], empty = none
  std::vector<int64_t> image_of;     // [n_model_atoms]: the unit-cell atom each atom is a copy of
  int64_t n_model_atoms() const { return static_cast<int64_t>(image_of.size()); }
  // Points into this object; coords as prepared.
  AtomsView view() const;
};

PreparedStructure prepare_structure(MdModel& model, const Structure& structure);

}  // namespace klay::md
