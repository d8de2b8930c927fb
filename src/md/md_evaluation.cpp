// MdModel's evaluation: the model inputs of one set of atoms (coordinates, species, staged graphs,
// shifts), the forward pass to the energy, and the backward pass to forces, edge gradients and the
// virials. What the model means (the `md:` section, the inferred cutoff, inputs and energy output)
// is worked out once in md_model.cpp.
#include <algorithm>
#include <array>
#include <chrono>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "md/md_model.hpp"
#include "md/virial.hpp"
#include "base/error.hpp"
#include "runtime/model.hpp"

namespace klay::md {

namespace {

bool is_per_atom(const at::Tensor& t, int64_t n_atoms) {
  return t.dim() >= 1 && t.size(0) == n_atoms && t.numel() == n_atoms;
}

}  // namespace

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

  using Clock = std::chrono::steady_clock;
  const Clock::time_point forward_start = Clock::now();
  c10::AutoGradMode grad_mode(true);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor coords = at::from_blob(const_cast<double*>(atoms.coords), {n, 3}, f64).clone().requires_grad_(true);
  at::Tensor shifts = edge_shifts(atoms);
  // Non-zero shifts strain with the cell, so the virial needs their gradients too.
  const bool shift_gradients = results.edge_gradients || results.per_atom_virial || (shifts.defined() && atoms.shifts);
  if (shift_gradients) shifts.requires_grad_(true);
  const std::vector<at::Tensor> inputs = model_inputs(atoms, coords, shifts);

  std::vector<Model::ValueRef> wanted{Model::ValueRef::output(energy_output_)};
  if (results.per_atom_energy && per_atom_request_) wanted.push_back(*per_atom_request_);
  const std::vector<at::Tensor> outputs = model_->forward(inputs, wanted);
  const at::Tensor& raw = outputs[0];
  const std::string energy_name = model_->output_names()[energy_output_];

  at::Tensor energy, per_atom;
  if (energy_kind_ == EnergyKind::IndexedSum) {
    energy = row_selected_ ? raw.sum() : raw.select(0, owned_row_).sum();
    if (per_atom_request_ && results.per_atom_energy) per_atom = outputs[1];
  } else if (is_per_atom(raw, n)) {
    energy = raw.reshape({n}).narrow(0, 0, atoms.n_owned).sum();
    per_atom = raw;
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

  results.energy = energy.item<double>();
  results.per_atom_energy_filled = results.per_atom_energy && per_atom.defined();
  if (results.per_atom_energy_filled) {
    if (per_atom.dim() == 2) per_atom = per_atom.select(1, 0);  // the sum layers read column 0 only
    if (per_atom.dim() != 1 || per_atom.size(0) != n)
      throw Error("per-atom energies have shape " + std::string(c10::str(outputs.back().sizes())) +
                  ", expected one value per atom");
    const at::Tensor owned = per_atom.detach().to(at::kDouble).narrow(0, 0, atoms.n_owned).contiguous();
    std::copy(owned.data_ptr<double>(), owned.data_ptr<double>() + atoms.n_owned, results.per_atom_energy);
  }

  const Clock::time_point backward_start = Clock::now();
  results.forward_seconds = std::chrono::duration<double>(backward_start - forward_start).count();
  if (!results.forces && !results.edge_gradients && !results.per_atom_virial) return;
  if (!energy.requires_grad()) return;  // an energy independent of positions: zero forces
  std::vector<at::Tensor> wrt{coords};
  if (shift_gradients) wrt.push_back(shifts);
  const auto grads = torch::autograd::grad({energy}, wrt, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                           /*allow_unused=*/true);
  const auto as_double = [](const at::Tensor& gradient, const at::Tensor& like) {
    return gradient.defined() ? gradient.to(at::kDouble).contiguous() : at::zeros_like(like.detach());
  };
  const at::Tensor forces = -as_double(grads[0], coords);
  const at::Tensor dE_dshifts = shift_gradients ? as_double(grads[1], shifts) : at::Tensor();
  const at::Tensor strained_shifts = atoms.shifts ? shifts.detach() : at::Tensor();
  const std::array<double, 6> virial = global_virial(coords.detach(), forces, strained_shifts, dE_dshifts);
  std::copy(virial.begin(), virial.end(), results.virial);
  if (results.forces) std::copy(forces.data_ptr<double>(), forces.data_ptr<double>() + 3 * n, results.forces);
  if (results.edge_gradients)
    std::copy(dE_dshifts.data_ptr<double>(), dE_dshifts.data_ptr<double>() + 3 * n_edges, results.edge_gradients);
  if (results.per_atom_virial) {
    // float32 forces and edge gradients agree only to float32 rounding, summed over many edges.
    const double tolerance = model_->dtype() == at::kFloat ? 1e-4 : 1e-8;
    const at::Tensor pairs = n_edges > 0
                                 ? at::from_blob(const_cast<int64_t*>(atoms.edge_pairs), {n_edges, 2}, at::kLong)
                                 : at::empty({0, 2}, at::kLong);
    const at::Tensor w =
        per_atom_virial(coords.detach(), pairs, strained_shifts, forces, dE_dshifts, tolerance).contiguous();
    std::copy(w.data_ptr<double>(), w.data_ptr<double>() + 6 * n, results.per_atom_virial);
  }
  results.backward_seconds = std::chrono::duration<double>(Clock::now() - backward_start).count();
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
  const at::Tensor pairs = n_edges > 0 ? at::from_blob(const_cast<int64_t*>(atoms.edge_pairs), {n_edges, 2}, i64).t()
                                       : at::empty({2, 0}, i64);
  at::Tensor owned_flags = at::zeros({n}, i64);
  owned_flags.narrow(0, 0, atoms.n_owned).fill_(1);
  std::vector<at::Tensor> inputs;
  for (const InputBinding& b : bindings_) {
    switch (b.role) {
      case InputRole::Species:
        inputs.push_back(at::from_blob(const_cast<int64_t*>(atoms.species), {n}, i64).clone());
        break;
      case InputRole::Coords: inputs.push_back(coords); break;
      case InputRole::StageGraph: inputs.push_back(pairs.narrow(1, 0, atoms.stage_edges[b.stage]).contiguous()); break;
      case InputRole::LargestGraph: inputs.push_back(pairs.contiguous()); break;
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
