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
  std::string method;                   // how the graph was built, for the report
  int64_t n_model_atoms = 0;            // atoms fed to the model (unit cell + padding)
  int64_t n_edges = 0;                  // edges of the largest graph
};

StructureResult evaluate_structure(MdModel& model, const Structure& structure);

}  // namespace klay::md
