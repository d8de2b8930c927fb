// MdModel's evaluation: the model inputs of one set of atoms (coordinates, species, staged graphs,
// shifts), the forward pass to the energy, and the backward pass to forces, edge gradients and the
// virials. What the model means (the `md:` section, the inferred cutoff, inputs and energy output)
// is worked out once in md_model.cpp.
#include <algorithm>
#include <array>
#include <chrono>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <ATen/Parallel.h>

#include "md/md_model.hpp"
#include "md/spatial_blocks.hpp"
#include "md/virial.hpp"
#include "base/error.hpp"
#include "runtime/model.hpp"

namespace klay::md {

namespace {

bool is_per_atom(const at::Tensor& t, int64_t n_atoms) {
  return t.dim() >= 1 && t.size(0) == n_atoms && t.numel() == n_atoms;
}

}  // namespace

// One evaluation's results before they reach the caller's arrays.
struct MdModel::Evaluation {
  double energy = 0;
  at::Tensor per_atom_energy;  // [n_owned] float64, undefined when the model gives none
  at::Tensor forces;           // [n_atoms,3] float64, undefined when not asked for
  at::Tensor dE_dshifts;       // [n_edges,3] float64, undefined without shift gradients
  double forward_seconds = 0, backward_seconds = 0;
};

void MdModel::compute(const AtomsView& atoms, ResultsView& results) const {
  const int64_t n = atoms.n_atoms, n_edges = atoms.n_edges;
  if (n < 0 || atoms.n_owned < 0 || atoms.n_owned > n)
    throw Error("atoms: n_owned = " + std::to_string(atoms.n_owned) + " with n_atoms = " + std::to_string(n));
  if (n > 0 && !atoms.coords) throw Error("atoms: coords is NULL");
  if (n > 0 && takes_species() && !atoms.species) throw Error("atoms: species is NULL but the model takes species");
  if (n_edges < 0 || (n_edges > 0 && !atoms.edge_pairs)) throw Error("atoms: edge_pairs is NULL");
  if (atoms.n_stage_graphs < num_staged_inputs_)
    throw Error("the model takes " + std::to_string(num_staged_inputs_) + " staged graphs, " +
                std::to_string(atoms.n_stage_graphs) + " given");
  for (int k = 0; k < atoms.n_stage_graphs; ++k) {
    const int64_t count = atoms.stage_edges[k];
    if (count < (k ? atoms.stage_edges[k - 1] : 0) || count > n_edges)
      throw Error("stage_edges must be nondecreasing and at most n_edges; stage " + std::to_string(k) + " has " +
                  std::to_string(count));
  }
  if (atoms.n_stage_graphs > 0 && atoms.stage_edges[atoms.n_stage_graphs - 1] != n_edges)
    throw Error("the last staged graph must hold all n_edges = " + std::to_string(n_edges) + " pairs");
  for (int64_t e = 0; e < 2 * n_edges; ++e)
    if (atoms.edge_pairs[e] < 0 || atoms.edge_pairs[e] >= n)
      throw Error("edge " + std::to_string(e / 2) + " refers to atom " + std::to_string(atoms.edge_pairs[e]) +
                  " outside [0, " + std::to_string(n) + ")");

  check_outputs(results.per_atom_energy != nullptr, results.edge_gradients != nullptr,
                results.per_atom_virial != nullptr);

  results.energy = 0;
  results.forward_seconds = results.backward_seconds = 0;
  std::fill(results.virial, results.virial + 6, 0.0);
  results.per_atom_energy_filled = results.per_atom_energy != nullptr;
  if (results.per_atom_energy) std::fill(results.per_atom_energy, results.per_atom_energy + n, 0.0);
  if (results.forces) std::fill(results.forces, results.forces + 3 * n, 0.0);
  if (results.edge_gradients) std::fill(results.edge_gradients, results.edge_gradients + 3 * n_edges, 0.0);
  if (results.per_atom_virial) std::fill(results.per_atom_virial, results.per_atom_virial + 6 * n, 0.0);
  // A rank without owned atoms contributes nothing (and empty tensors would trouble some layers).
  if (atoms.n_owned == 0) return;

  const bool gradients = results.forces || results.edge_gradients || results.per_atom_virial;
  // Non-zero shifts strain with the cell, so the virial needs their gradients too.
  const bool shift_gradients = takes_shifts() && (results.edge_gradients || results.per_atom_virial || atoms.shifts);
  const int64_t n_blocks = block_count(atoms);
  const Evaluation result =
      n_blocks > 1 ? evaluate_in_blocks(atoms, n_blocks, results.per_atom_energy, gradients, shift_gradients)
                   : evaluate(atoms, results.per_atom_energy, gradients, shift_gradients);

  results.energy = result.energy;
  results.forward_seconds = result.forward_seconds;
  results.backward_seconds = result.backward_seconds;
  results.per_atom_energy_filled = results.per_atom_energy && result.per_atom_energy.defined();
  if (results.per_atom_energy_filled)
    std::copy(result.per_atom_energy.data_ptr<double>(), result.per_atom_energy.data_ptr<double>() + atoms.n_owned,
              results.per_atom_energy);
  if (!result.forces.defined()) return;

  const auto backward_start = std::chrono::steady_clock::now();
  const at::Tensor coords = at::from_blob(const_cast<double*>(atoms.coords), {n, 3}, at::kDouble);
  const at::Tensor strained_shifts =
      atoms.shifts ? at::from_blob(const_cast<double*>(atoms.shifts), {n_edges, 3}, at::kDouble) : at::Tensor();
  const std::array<double, 6> virial = global_virial(coords, result.forces, strained_shifts, result.dE_dshifts);
  std::copy(virial.begin(), virial.end(), results.virial);
  if (results.forces)
    std::copy(result.forces.data_ptr<double>(), result.forces.data_ptr<double>() + 3 * n, results.forces);
  if (results.edge_gradients)
    std::copy(result.dE_dshifts.data_ptr<double>(), result.dE_dshifts.data_ptr<double>() + 3 * n_edges,
              results.edge_gradients);
  if (results.per_atom_virial) {
    // float32 forces and edge gradients agree only to float32 rounding, summed over many edges.
    const double tolerance = model_->dtype() == at::kFloat ? 1e-4 : 1e-8;
    const at::Tensor pairs = n_edges > 0
                                 ? at::from_blob(const_cast<int64_t*>(atoms.edge_pairs), {n_edges, 2}, at::kLong)
                                 : at::empty({0, 2}, at::kLong);
    const at::Tensor w =
        per_atom_virial(coords, pairs, strained_shifts, result.forces, result.dE_dshifts, tolerance).contiguous();
    std::copy(w.data_ptr<double>(), w.data_ptr<double>() + 6 * n, results.per_atom_virial);
  }
  results.backward_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - backward_start).count();
}

MdModel::Evaluation MdModel::evaluate(const AtomsView& atoms, bool per_atom_energy, bool gradients,
                                      bool shift_gradients) const {
  const int64_t n = atoms.n_atoms;
  using Clock = std::chrono::steady_clock;
  const Clock::time_point forward_start = Clock::now();
  // Grad mode is per thread, and spatial blocks run this on libtorch's worker threads.
  c10::AutoGradMode grad_mode(true);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor coords = at::from_blob(const_cast<double*>(atoms.coords), {n, 3}, f64).clone().requires_grad_(true);
  at::Tensor shifts = edge_shifts(atoms);
  if (shift_gradients) shifts.requires_grad_(true);
  const std::vector<at::Tensor> inputs = model_inputs(atoms, coords, shifts);

  std::vector<Model::ValueRef> wanted{Model::ValueRef::output(energy_output_)};
  if (per_atom_energy && per_atom_request_) wanted.push_back(*per_atom_request_);
  const std::vector<at::Tensor> outputs = model_->forward(inputs, wanted);
  const at::Tensor& raw = outputs[0];
  const std::string energy_name = model_->output_names()[energy_output_];

  at::Tensor energy, per_atom;
  if (energy_kind_ == EnergyKind::IndexedSum) {
    energy = row_selected_ ? raw.sum() : raw.select(0, owned_row_).sum();
    if (per_atom_request_ && per_atom_energy) per_atom = outputs[1];
  } else if (is_per_atom(raw, n)) {
    energy = raw.reshape({n}).narrow(0, 0, atoms.n_owned).sum();
    per_atom = raw;
    if (n > 1) energy_seen_per_atom_ = true;
  } else if (raw.numel() == 1) {
    if (n != atoms.n_owned)
      throw Error("model output '" + energy_name + "' is one number for all atoms" +
                  (energy_layer_.empty() ? "" : " (layer '" + energy_layer_ + "')") +
                  ": with ghost atoms present it would count their energies too, and it cannot be split. "
                  "Output per-atom energies, or sum them with AtomwiseSumIndex/KIMAPISumIndex indexed by "
                  "'batch' or 'contributions'");
    energy = raw.sum();
  } else {
    throw Error("model output '" + energy_name + "' has shape " + std::string(c10::str(raw.sizes())) +
                ": neither one value per atom (" + std::to_string(n) + ") nor a single total");
  }

  Evaluation result;
  result.energy = energy.item<double>();
  if (per_atom_energy && per_atom.defined()) {
    if (per_atom.dim() == 2) per_atom = per_atom.select(1, 0);  // the sum layers read column 0 only
    if (per_atom.dim() != 1 || per_atom.size(0) != n)
      throw Error("per-atom energies have shape " + std::string(c10::str(outputs.back().sizes())) +
                  ", expected one value per atom");
    result.per_atom_energy = per_atom.detach().to(at::kDouble).narrow(0, 0, atoms.n_owned).contiguous();
  }

  const Clock::time_point backward_start = Clock::now();
  result.forward_seconds = std::chrono::duration<double>(backward_start - forward_start).count();
  if (!gradients) return result;
  const auto as_double = [](const at::Tensor& gradient, const at::Tensor& like) {
    return gradient.defined() ? gradient.to(at::kDouble).contiguous() : at::zeros_like(like.detach());
  };
  if (energy.requires_grad()) {
    std::vector<at::Tensor> wrt{coords};
    if (shift_gradients) wrt.push_back(shifts);
    // Gradients with respect to the inputs only: nothing accumulates into the parameters' .grad,
    // which concurrent blocks would share.
    const auto grads = torch::autograd::grad({energy}, wrt, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                             /*allow_unused=*/true);
    result.forces = -as_double(grads[0], coords);
    if (shift_gradients) result.dE_dshifts = as_double(grads[1], shifts);
  } else {  // an energy independent of positions: zero forces
    result.forces = at::zeros({n, 3}, f64);
    if (shift_gradients) result.dE_dshifts = at::zeros({atoms.n_edges, 3}, f64);
  }
  result.backward_seconds = std::chrono::duration<double>(Clock::now() - backward_start).count();
  return result;
}

int64_t MdModel::block_count(const AtomsView& atoms) const {
  // A single total cannot be split. Whether an energy output gives one value per atom shows only
  // in a forward pass, unless ghost atoms (which refuse a total) are present.
  const bool splittable = energy_kind_ == EnergyKind::IndexedSum || atoms.n_atoms > atoms.n_owned ||
                          energy_seen_per_atom_;
  if (!blocks_enabled_ || !splittable || num_graph_inputs() == 0) return 1;
  return spatial_block_count(atoms.n_owned, at::get_num_threads(), block_atoms_);
}

MdModel::Evaluation MdModel::evaluate_in_blocks(const AtomsView& atoms, int64_t n_blocks, bool per_atom_energy,
                                                bool gradients, bool shift_gradients) const {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  const EdgesByAtom edges_by_atom(atoms.edge_pairs, atoms.n_edges, atoms.n_atoms);
  const std::vector<std::vector<int64_t>> owned = bisect_owned_atoms(atoms.coords, atoms.n_owned, n_blocks);
  std::vector<SpatialBlock> blocks(owned.size());
  std::vector<Evaluation> parts(owned.size());
  // One block per thread; libtorch runs the operators inside a parallel region on that thread.
  at::parallel_for(0, static_cast<int64_t>(owned.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      SpatialBlock& block = blocks[b];
      block = edges_by_atom.block(owned[b], num_stages_);
      const int64_t n_block_atoms = static_cast<int64_t>(block.atoms.size());
      const int64_t n_block_edges = static_cast<int64_t>(block.edges.size());
      std::vector<double> coords(3 * n_block_atoms), shifts(atoms.shifts ? 3 * n_block_edges : 0);
      std::vector<int64_t> species(atoms.species ? n_block_atoms : 0);
      for (int64_t m = 0; m < n_block_atoms; ++m) {
        const int64_t a = block.atoms[m];
        std::copy(atoms.coords + 3 * a, atoms.coords + 3 * a + 3, coords.begin() + 3 * m);
        if (atoms.species) species[m] = atoms.species[a];
      }
      if (atoms.shifts)
        for (int64_t e = 0; e < n_block_edges; ++e)
          std::copy(atoms.shifts + 3 * block.edges[e], atoms.shifts + 3 * block.edges[e] + 3, shifts.begin() + 3 * e);
      AtomsView view;
      view.n_atoms = n_block_atoms;
      view.n_owned = block.n_owned;
      view.coords = coords.data();
      view.species = atoms.species ? species.data() : nullptr;
      view.n_edges = n_block_edges;
      view.edge_pairs = block.edge_pairs.data();
      view.n_stage_graphs = static_cast<int>(block.stage_edges.size());
      view.stage_edges = block.stage_edges.data();
      view.shifts = atoms.shifts ? shifts.data() : nullptr;
      parts[b] = evaluate(view, per_atom_energy, gradients, shift_gradients);
    }
  });
  blocks_evaluated_ += static_cast<int64_t>(owned.size());

  // Forces and edge gradients add up over the blocks; each owned atom is in exactly one block.
  Evaluation total;
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const bool with_per_atom = per_atom_energy && parts[0].per_atom_energy.defined();
  if (with_per_atom) total.per_atom_energy = at::zeros({atoms.n_owned}, f64);
  if (gradients) total.forces = at::zeros({atoms.n_atoms, 3}, f64);
  if (gradients && shift_gradients) total.dE_dshifts = at::zeros({atoms.n_edges, 3}, f64);
  double busy_forward = 0, busy_backward = 0;
  for (size_t b = 0; b < parts.size(); ++b) {
    const SpatialBlock& block = blocks[b];
    const Evaluation& part = parts[b];
    total.energy += part.energy;
    busy_forward += part.forward_seconds;
    busy_backward += part.backward_seconds;
    if (with_per_atom)
      for (int64_t m = 0; m < block.n_owned; ++m)
        total.per_atom_energy.data_ptr<double>()[block.atoms[m]] = part.per_atom_energy.data_ptr<double>()[m];
    if (total.forces.defined()) {
      double* forces = total.forces.data_ptr<double>();
      const double* block_forces = part.forces.data_ptr<double>();
      for (size_t m = 0; m < block.atoms.size(); ++m)
        for (int k = 0; k < 3; ++k) forces[3 * block.atoms[m] + k] += block_forces[3 * m + k];
    }
    if (total.dE_dshifts.defined()) {
      double* dE_dshifts = total.dE_dshifts.data_ptr<double>();
      const double* block_dE_dshifts = part.dE_dshifts.data_ptr<double>();
      for (size_t e = 0; e < block.edges.size(); ++e)
        for (int k = 0; k < 3; ++k) dE_dshifts[3 * block.edges[e] + k] += block_dE_dshifts[3 * e + k];
    }
  }
  // The blocks overlap in time: the wall time is split in the proportion of their busy times.
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  const double busy = busy_forward + busy_backward;
  total.forward_seconds = busy > 0 ? wall * busy_forward / busy : wall;
  total.backward_seconds = wall - total.forward_seconds;
  return total;
}

void MdModel::check_outputs(bool per_atom_energy, bool edge_gradients, bool per_atom_virial) const {
  if (per_atom_energy && !has_per_atom_energy())
    throw Error("per-atom energies are not available: layer '" + energy_layer_ +
                "' sums an element of a tuple; add that tensor to model_outputs");
  if (edge_gradients && !takes_shifts()) throw Error("edge gradients were requested but the model takes no shifts");
  if (per_atom_virial && !takes_shifts())
    throw Error("cannot compute a per-atom virial with this model: the model has no 'shifts' input, so there are "
                "no per-edge gradients to split its many-body virial onto atoms (forces on atoms alone do not "
                "define that split)");
}

at::Tensor MdModel::edge_shifts(const AtomsView& atoms) const {
  if (!takes_shifts()) return {};
  return atoms.shifts ? at::from_blob(const_cast<double*>(atoms.shifts), {atoms.n_edges, 3}, at::kDouble).clone()
                      : at::zeros({atoms.n_edges, 3}, at::kDouble);
}

std::vector<at::Tensor> MdModel::model_inputs(const AtomsView& atoms, const at::Tensor& coords,
                                              const at::Tensor& shifts) const {
  const int64_t n = atoms.n_atoms, n_edges = atoms.n_edges;
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  // The first `count` pairs as a contiguous [2, count] edge_index, in a plain loop: ATen's strided
  // copy of the transpose took tens of microseconds per graph on the step's serial path.
  const auto edge_index = [&](int64_t count) {
    at::Tensor out = at::empty({2, count}, i64);
    int64_t* first = out.data_ptr<int64_t>();
    int64_t* second = first + count;
    for (int64_t e = 0; e < count; ++e) {
      first[e] = atoms.edge_pairs[2 * e];
      second[e] = atoms.edge_pairs[2 * e + 1];
    }
    return out;
  };
  at::Tensor owned_flags = at::zeros({n}, i64);
  owned_flags.narrow(0, 0, atoms.n_owned).fill_(1);
  std::vector<at::Tensor> inputs;
  for (const InputBinding& b : bindings_) {
    switch (b.role) {
      case InputRole::Species:
        inputs.push_back(at::from_blob(const_cast<int64_t*>(atoms.species), {n}, i64).clone());
        break;
      case InputRole::Coords: inputs.push_back(coords); break;
      case InputRole::StageGraph: inputs.push_back(edge_index(atoms.stage_edges[b.stage])); break;
      case InputRole::LargestGraph: inputs.push_back(edge_index(n_edges)); break;
      case InputRole::Shifts: inputs.push_back(shifts); break;
      case InputRole::Contributing: inputs.push_back(owned_flags); break;
      case InputRole::Contributions:
      case InputRole::Batch: inputs.push_back(1 - owned_flags); break;
    }
  }
  return inputs;
}

at::Tensor MdModel::owned_atom_energies(const AtomsView& atoms, const at::Tensor& coords) const {
  const int64_t n = atoms.n_atoms;
  if (coords.dim() != 2 || coords.size(0) != n || coords.size(1) != 3)
    throw Error("owned_atom_energies: coords must be [" + std::to_string(n) + ", 3], got " +
                std::string(c10::str(coords.sizes())));
  if (atoms.n_stage_graphs < num_staged_inputs_)
    throw Error("the model takes " + std::to_string(num_staged_inputs_) + " staged graphs, " +
                std::to_string(atoms.n_stage_graphs) + " given");
  if (!has_per_atom_energy())
    throw Error("model output '" + model_->output_names()[energy_output_] +
                "' gives no per-atom energies (layer '" + energy_layer_ + "' sums an element of a tuple)");
  const Model::ValueRef wanted =
      energy_kind_ == EnergyKind::IndexedSum ? *per_atom_request_ : Model::ValueRef::output(energy_output_);
  at::Tensor per_atom = model_->forward(model_inputs(atoms, coords, edge_shifts(atoms)), {wanted})[0];
  if (per_atom.dim() == 2) per_atom = per_atom.select(1, 0);  // the sum layers read column 0 only
  if (!is_per_atom(per_atom, n))
    throw Error("per-atom energies have shape " + std::string(c10::str(per_atom.sizes())) + ", expected " +
                std::to_string(n) + " values");
  return per_atom.reshape({n}).narrow(0, 0, atoms.n_owned);
}

}  // namespace klay::md
