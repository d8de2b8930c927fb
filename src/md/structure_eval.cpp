#include "md/structure_eval.hpp"

#include <cmath>
#include <cstdio>

#include "md/neighbors.hpp"
#include "md/staged.hpp"
#include "base/error.hpp"

namespace klay::md {

namespace {

constexpr size_t kListedAtoms = 10;  // atoms named in a non-finite result's message

std::vector<int64_t> species_codes(MdModel& model, const Structure& structure) {
  std::vector<int64_t> codes;
  if (!model.takes_species()) return codes;
  for (int64_t a = 0; a < structure.size(); ++a) {
    try {
      codes.push_back(model.element_code(structure.elements[a]));
    } catch (const Error& e) {
      throw Error("atom " + std::to_string(a + 1) + ": " + e.what());
    }
  }
  return codes;
}

// Per atom, the distance to its closest neighbour (periodic images included) within `cutoff`, or
// a negative number when it has none.
std::vector<double> closest_neighbour_distances(const Structure& structure, double cutoff) {
  std::vector<double> closest(structure.size(), -1.0);
  for (const NeighborPair& p : find_neighbors(structure.positions.data(), structure.size(), structure.cell, cutoff)) {
    const auto t = structure.cell.translation(p.offset);
    double squared = 0;
    for (int k = 0; k < 3; ++k) {
      const double d = structure.positions[3 * p.j + k] + t[k] - structure.positions[3 * p.i + k];
      squared += d * d;
    }
    if (closest[p.i] < 0 || std::sqrt(squared) < closest[p.i]) closest[p.i] = std::sqrt(squared);
  }
  return closest;
}

// A NaN or Inf result is refused: it would otherwise be printed, written as "JSON" or trained on.
void check_finite(const StructureResult& result, const Structure& structure, double cutoff) {
  std::vector<int64_t> bad;
  for (int64_t a = 0; a < structure.size(); ++a)
    if (!std::isfinite(result.forces[3 * a]) || !std::isfinite(result.forces[3 * a + 1]) ||
        !std::isfinite(result.forces[3 * a + 2]))
      bad.push_back(a);
  if (std::isfinite(result.energy) && bad.empty()) return;
  std::string message = "the model gives a non-finite result: energy " + std::to_string(result.energy) + ", " +
                        std::to_string(bad.size()) + " atom(s) with non-finite forces";
  const std::vector<double> closest = bad.empty() ? std::vector<double>() : closest_neighbour_distances(structure, cutoff);
  for (size_t k = 0; k < bad.size() && k < kListedAtoms; ++k) {
    const int64_t a = bad[k];
    char distance[64];
    std::snprintf(distance, sizeof distance, closest[a] < 0 ? "no neighbour within %g A" : "closest neighbour at %.6g A",
                  closest[a] < 0 ? cutoff : closest[a]);
    message += "\n  atom " + std::to_string(a + 1) + " (" + structure.elements[a] + "): " + distance;
  }
  if (bad.size() > kListedAtoms) message += "\n  ... and " + std::to_string(bad.size() - kListedAtoms) + " more";
  throw Error(message);
}

StructureResult evaluate_unchecked(MdModel& model, const Structure& structure) {
  const int64_t n = structure.size();
  if (n == 0) throw Error("the structure has no atoms");
  const std::vector<int64_t> codes = species_codes(model, structure);
  const bool has_graph = model.num_graph_inputs() > 0;
  StructureResult result;
  AtomsView atoms;
  ResultsView out;

  if (model.takes_shifts() && model.num_graph_inputs() == 1) {
    // One periodic graph with explicit shifts: every atom is owned.
    const std::vector<NeighborPair> pairs = find_neighbors(structure.positions.data(), n, structure.cell, model.cutoff());
    std::vector<int64_t> edges;
    std::vector<double> shifts;
    for (const NeighborPair& p : pairs) {
      edges.push_back(p.i);
      edges.push_back(p.j);
      const auto t = structure.cell.translation(p.offset);
      shifts.insert(shifts.end(), t.begin(), t.end());
    }
    const std::vector<int64_t> stage_edges{static_cast<int64_t>(pairs.size())};
    atoms = AtomsView{n, n, structure.positions.data(), codes.empty() ? nullptr : codes.data(),
                      static_cast<int64_t>(pairs.size()), edges.data(), 1, stage_edges.data(), shifts.data()};
    result.forces.assign(3 * n, 0.0);
    if (model.has_per_atom_energy()) result.per_atom_energy.assign(n, 0.0);
    out.forces = result.forces.data();
    out.per_atom_energy = result.per_atom_energy.empty() ? nullptr : result.per_atom_energy.data();
    model.compute(atoms, out);
    if (!out.per_atom_energy_filled) result.per_atom_energy.clear();
    result.method = "periodic neighbour list with shifts (cutoff " + std::to_string(model.cutoff()) + ")";
    result.n_model_atoms = n;
    result.n_edges = atoms.n_edges;
    result.energy = out.energy;
    return result;
  }

  // Padding atoms + staged graphs; images fold back onto their unit-cell atoms.
  const int depth = model.num_stages();
  const PaddedAtoms padded =
      has_graph ? pad_with_images(structure.positions.data(), n, structure.cell, depth * model.cutoff() + kPaddingMargin)
                : pad_with_images(structure.positions.data(), n, Cell::open(), 1.0);
  const int64_t n_all = padded.n_atoms();
  StagedGraph graph;
  if (has_graph) graph = staged_graph_of_atoms(padded.coords.data(), n, n_all, model.cutoff(), depth);
  std::vector<int64_t> all_codes;
  for (int64_t a = 0; a < n_all && !codes.empty(); ++a) all_codes.push_back(codes[padded.image_of[a]]);

  atoms = AtomsView{n_all, n, padded.coords.data(), all_codes.empty() ? nullptr : all_codes.data(),
                    graph.n_edges(), graph.edge_pairs.data(), static_cast<int>(graph.stage_edges.size()),
                    graph.stage_edges.data(), nullptr};
  std::vector<double> forces(3 * n_all, 0.0), per_atom;
  if (model.has_per_atom_energy()) per_atom.assign(n_all, 0.0);
  out.forces = forces.data();
  out.per_atom_energy = per_atom.empty() ? nullptr : per_atom.data();
  model.compute(atoms, out);

  result.energy = out.energy;
  result.forces.assign(3 * n, 0.0);
  for (int64_t a = 0; a < n_all; ++a)
    for (int k = 0; k < 3; ++k) result.forces[3 * padded.image_of[a] + k] += forces[3 * a + k];
  const double* w = out.virial;  // xx yy zz xy xz yz
  result.virial = {w[0], w[3], w[4], w[3], w[1], w[5], w[4], w[5], w[2]};
  if (out.per_atom_energy_filled) result.per_atom_energy.assign(per_atom.begin(), per_atom.begin() + n);
  result.method = has_graph ? std::to_string(n_all - n) + " padding atoms, " + std::to_string(depth) +
                                  " staged graph(s) (cutoff " + std::to_string(model.cutoff()) + ")"
                            : "no edge inputs";
  result.n_model_atoms = n_all;
  result.n_edges = graph.n_edges();
  return result;
}

}  // namespace

StructureResult evaluate_structure(MdModel& model, const Structure& structure) {
  StructureResult result = evaluate_unchecked(model, structure);
  check_finite(result, structure, model.cutoff());
  return result;
}

AtomsView PreparedStructure::view() const {
  return AtomsView{n_model_atoms(), n_cell_atoms, coords.data(), species.empty() ? nullptr : species.data(),
                   static_cast<int64_t>(edge_pairs.size() / 2), edge_pairs.data(),
                   static_cast<int>(stage_edges.size()), stage_edges.data(), shifts.empty() ? nullptr : shifts.data()};
}

PreparedStructure prepare_structure(MdModel& model, const Structure& structure) {
  const int64_t n = structure.size();
  if (n == 0) throw Error("the structure has no atoms");
  const std::vector<int64_t> codes = species_codes(model, structure);
  PreparedStructure prepared;
  prepared.n_cell_atoms = n;
  if (model.takes_shifts() && model.num_graph_inputs() == 1) {
    const std::vector<NeighborPair> pairs = find_neighbors(structure.positions.data(), n, structure.cell, model.cutoff());
    for (const NeighborPair& p : pairs) {
      prepared.edge_pairs.insert(prepared.edge_pairs.end(), {p.i, p.j});
      const auto t = structure.cell.translation(p.offset);
      prepared.shifts.insert(prepared.shifts.end(), t.begin(), t.end());
    }
    prepared.stage_edges = {static_cast<int64_t>(pairs.size())};
    prepared.coords = structure.positions;
    prepared.species = codes;
    for (int64_t a = 0; a < n; ++a) prepared.image_of.push_back(a);
    return prepared;
  }
  const bool has_graph = model.num_graph_inputs() > 0;
  const int depth = model.num_stages();
  PaddedAtoms padded =
      has_graph ? pad_with_images(structure.positions.data(), n, structure.cell, depth * model.cutoff() + kPaddingMargin)
                : pad_with_images(structure.positions.data(), n, Cell::open(), 1.0);
  if (!has_graph) {
    for (int64_t a = 0; a < padded.n_atoms() && !codes.empty(); ++a) prepared.species.push_back(codes[padded.image_of[a]]);
    prepared.coords = std::move(padded.coords);
    prepared.image_of = std::move(padded.image_of);
    return prepared;
  }
  StagedGraph graph = staged_graph_of_atoms(padded.coords.data(), n, padded.n_atoms(), model.cutoff(), depth);
  // Only S_D (the unit-cell atoms and the images an edge touches) reaches the energy: the padding
  // shell D·r_cut + margin holds many images no chain of D edges connects, and feeding them would
  // cost model time for nothing. Kept atoms keep their relative order.
  std::vector<int64_t> model_index(static_cast<size_t>(padded.n_atoms()), -1);
  for (int64_t a = 0; a < n; ++a) model_index[a] = 0;
  for (int64_t atom : graph.edge_pairs) model_index[atom] = 0;
  int64_t n_kept = 0;
  for (int64_t a = 0; a < padded.n_atoms(); ++a) {
    if (model_index[a] < 0) continue;
    model_index[a] = n_kept++;
    prepared.coords.insert(prepared.coords.end(), &padded.coords[3 * a], &padded.coords[3 * a] + 3);
    prepared.image_of.push_back(padded.image_of[a]);
    if (!codes.empty()) prepared.species.push_back(codes[padded.image_of[a]]);
  }
  for (int64_t& atom : graph.edge_pairs) atom = model_index[atom];
  prepared.edge_pairs = std::move(graph.edge_pairs);
  prepared.stage_edges = std::move(graph.stage_edges);
  return prepared;
}

}  // namespace klay::md
