#include "fit/trainer.hpp"

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/optim/adam.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <random>

#include "base/error.hpp"
#include "runtime/model.hpp"

namespace klay::fit {

namespace {

// Sums of squared errors, from which RMSEs and the loss follow.
struct ErrorSums {
  double energy_squared = 0;  // (ΔE/N)^2 summed over frames with an energy
  int64_t n_energies = 0;
  double force_squared = 0;   // ΔF^2 summed over force components
  int64_t n_force_components = 0;
  double virial_squared = 0;  // (ΔW/N)^2 summed over the components of frames with a virial
  int64_t n_virial_components = 0;
  int64_t n_frames = 0;

  Errors errors(const FitOptions& options) const {
    Errors e;
    e.n_frames = n_frames;
    if (n_energies > 0) {
      e.energy_rmse = std::sqrt(energy_squared / n_energies);
      e.loss += options.energy_weight * energy_squared / n_energies;
    }
    if (n_force_components > 0) {
      e.force_rmse = std::sqrt(force_squared / n_force_components);
      e.loss += options.force_weight * force_squared / n_force_components;
    }
    if (n_virial_components > 0) {
      e.has_virials = true;
      e.virial_rmse = std::sqrt(virial_squared / n_virial_components);
      e.loss += options.virial_weight * virial_squared / n_virial_components;
    }
    return e;
  }
};

bool is_floating(const at::Tensor& t) { return at::isFloatingType(t.scalar_type()); }

// Frames concatenated into one disjoint graph: every frame's unit-cell (owned) atoms first, then
// every frame's images, so the model's owned/ghost flags stay "the first n_owned atoms"; edges
// renumbered and regrouped by stage, so G_k of the batch is the union of the frames' G_k.
struct BatchGraph {
  md::PreparedStructure atoms;  // image_of: the batch's unit-cell atom of each atom
  at::Tensor coords;            // [n_atoms,3] float64
  at::Tensor frame_of_cell;     // [n_cell_atoms] int64: position of the atom's frame in the batch
  at::Tensor frame_of_atom;     // [n_atoms] int64
  at::Tensor image_of;          // [n_atoms] int64
};

BatchGraph batch_graph(const std::vector<const TrainingFrame*>& frames) {
  BatchGraph batch;
  md::PreparedStructure& out = batch.atoms;
  std::vector<int64_t> cell_offset, image_offset;
  int64_t n_cell = 0, n_images = 0;
  size_t n_stages = 0;
  for (const TrainingFrame* f : frames) {
    cell_offset.push_back(n_cell);
    image_offset.push_back(n_images);
    n_cell += f->prepared.n_cell_atoms;
    n_images += f->prepared.n_model_atoms() - f->prepared.n_cell_atoms;
    n_stages = std::max(n_stages, f->prepared.stage_edges.size());
  }
  const int64_t n_atoms = n_cell + n_images;
  out.n_cell_atoms = n_cell;
  out.coords.resize(3 * n_atoms);
  out.image_of.resize(n_atoms);
  if (!frames.front()->prepared.species.empty()) out.species.resize(n_atoms);
  std::vector<int64_t> frame_of_atom(n_atoms), frame_of_cell(n_cell);
  std::vector<std::vector<int64_t>> batch_index(frames.size());
  for (size_t f = 0; f < frames.size(); ++f) {
    const md::PreparedStructure& p = frames[f]->prepared;
    for (int64_t a = 0; a < p.n_model_atoms(); ++a) {
      const int64_t b = a < p.n_cell_atoms ? cell_offset[f] + a : n_cell + image_offset[f] + a - p.n_cell_atoms;
      batch_index[f].push_back(b);
      std::copy(&p.coords[3 * a], &p.coords[3 * a] + 3, &out.coords[3 * b]);
      out.image_of[b] = cell_offset[f] + p.image_of[a];
      if (!out.species.empty()) out.species[b] = p.species[a];
      frame_of_atom[b] = static_cast<int64_t>(f);
    }
    std::fill(frame_of_cell.begin() + cell_offset[f], frame_of_cell.begin() + cell_offset[f] + p.n_cell_atoms,
              static_cast<int64_t>(f));
  }
  for (size_t k = 0; k < n_stages; ++k) {
    for (size_t f = 0; f < frames.size(); ++f) {
      const md::PreparedStructure& p = frames[f]->prepared;
      // A frame with fewer stages (no graph) adds no edges to the later ones.
      const int64_t first = k == 0 ? 0 : p.stage_edges[std::min(k, p.stage_edges.size()) - 1];
      const int64_t last = k < p.stage_edges.size() ? p.stage_edges[k] : first;
      for (int64_t e = first; e < last; ++e) {
        out.edge_pairs.push_back(batch_index[f][p.edge_pairs[2 * e]]);
        out.edge_pairs.push_back(batch_index[f][p.edge_pairs[2 * e + 1]]);
        if (!p.shifts.empty()) out.shifts.insert(out.shifts.end(), &p.shifts[3 * e], &p.shifts[3 * e] + 3);
      }
    }
    out.stage_edges.push_back(static_cast<int64_t>(out.edge_pairs.size() / 2));
  }
  batch.coords = at::from_blob(out.coords.data(), {n_atoms, 3}, at::kDouble).clone();
  batch.image_of = at::from_blob(out.image_of.data(), {n_atoms}, at::kLong).clone();
  batch.frame_of_atom = at::from_blob(frame_of_atom.data(), {n_atoms}, at::kLong).clone();
  batch.frame_of_cell = at::from_blob(frame_of_cell.data(), {n_cell}, at::kLong).clone();
  return batch;
}

// The rows of `rows` ([B,...]) with the given indices.
at::Tensor labelled_rows(const at::Tensor& rows, const std::vector<int64_t>& labelled) {
  return rows.index_select(0, at::tensor(labelled, at::kLong));
}

}  // namespace

struct Trainer::Optimizer {
  explicit Optimizer(const std::vector<at::Tensor>& parameters, double lr)
      : adam(parameters, torch::optim::AdamOptions(lr)) {}
  torch::optim::Adam adam;
};

// Errors of a batch's labelled quantities; undefined when no frame has that label.
struct Trainer::BatchErrors {
  at::Tensor energy;  // [frames with an energy]: (E_model − E_ref)/N
  at::Tensor forces;  // [atoms of frames with forces, 3]: F_model − F_ref
  at::Tensor virial;  // [frames with a virial, 9]: (W_model − W_ref)/N
  int64_t n_frames = 0;

  // The mean squared errors, weighted: each term a mean over the batch's labels of its kind.
  at::Tensor loss(const FitOptions& options) const {
    at::Tensor loss = at::zeros({}, at::kDouble);
    if (energy.defined()) loss = loss + options.energy_weight * energy.square().mean();
    if (forces.defined()) loss = loss + options.force_weight * forces.square().mean();
    if (virial.defined()) loss = loss + options.virial_weight * virial.square().mean();
    return loss;
  }

  void add_to(ErrorSums& sums) const {
    sums.n_frames += n_frames;
    if (energy.defined()) {
      sums.energy_squared += energy.detach().square().sum().item<double>();
      sums.n_energies += energy.numel();
    }
    if (forces.defined()) {
      sums.force_squared += forces.detach().square().sum().item<double>();
      sums.n_force_components += forces.numel();
    }
    if (virial.defined()) {
      sums.virial_squared += virial.detach().square().sum().item<double>();
      sums.n_virial_components += virial.numel();
    }
  }
};

Trainer::Trainer(md::MdModel& model, std::vector<TrainingFrame> frames, Split split, FitOptions options)
    : model_(model), frames_(std::move(frames)), split_(std::move(split)), options_(options) {
  if (options_.epochs < 1) throw Error("--epochs must be at least 1");
  if (options_.batch_size < 1) throw Error("--batch-size must be at least 1");
  if (!(options_.lr > 0)) throw Error("--lr must be positive");
  if (options_.energy_weight < 0 || options_.force_weight < 0 || options_.virial_weight < 0 ||
      options_.energy_weight + options_.force_weight + options_.virial_weight <= 0)
    throw Error("the energy, force and virial weights must be non-negative and not all zero");
  if (!model_.has_per_atom_energy())
    throw Error("the model gives no per-atom energies, which fitting in mini-batches needs");
  for (const std::vector<size_t>* set : {&split_.train, &split_.validation})
    for (size_t i : *set)
      if (i >= frames_.size()) throw Error("frame index " + std::to_string(i) + " outside the training set");
  if (split_.train.empty()) throw Error("no training frames");
  // An alias is the same module at several call-sites: its parameters appear once per call-site.
  std::vector<const c10::TensorImpl*> seen;
  for (const at::Tensor& p : model_.model().modules().parameters(/*recurse=*/true)) {
    if (!p.requires_grad() || std::find(seen.begin(), seen.end(), p.unsafeGetTensorImpl()) != seen.end()) continue;
    seen.push_back(p.unsafeGetTensorImpl());
    parameters_.push_back(p);
  }
  if (parameters_.empty()) throw Error("the model has no trainable parameters");
  optimizer_ = std::make_unique<Optimizer>(parameters_, options_.lr);
}

Trainer::~Trainer() = default;

size_t Trainer::n_parameters() const {
  size_t n = 0;
  for (const at::Tensor& p : parameters_) n += static_cast<size_t>(p.numel());
  return n;
}

// Forces by autograd through the model; with for_training the graph is kept (and, when forces or
// virials are fitted, made differentiable) for the loss's backward pass.
Trainer::BatchErrors Trainer::batch_errors(const std::vector<size_t>& frame_indices, bool for_training) const {
  std::vector<const TrainingFrame*> frames;
  for (size_t i : frame_indices) frames.push_back(&frames_[i]);
  const BatchGraph batch = batch_graph(frames);
  const int64_t n_frames = static_cast<int64_t>(frames.size());
  const at::Tensor coords = batch.coords.requires_grad_(true);
  const at::Tensor atom_energies = model_.owned_atom_energies(batch.atoms.view(), coords).to(at::kDouble);
  const at::Tensor energies = at::zeros({n_frames}, atom_energies.options()).index_add(0, batch.frame_of_cell, atom_energies);

  std::vector<int64_t> with_energy, with_forces, with_virial;
  std::vector<at::Tensor> reference_energy, reference_forces, reference_virial, force_rows;
  std::vector<double> atoms_of_frame;
  int64_t cell_offset = 0;
  for (int64_t f = 0; f < n_frames; ++f) {
    const TrainingFrame& frame = *frames[f];
    atoms_of_frame.push_back(static_cast<double>(frame.n_atoms));
    if (frame.energy) {
      with_energy.push_back(f);
      reference_energy.push_back(at::scalar_tensor(*frame.energy, at::kDouble));
    }
    if (frame.forces.defined()) {
      with_forces.push_back(f);
      reference_forces.push_back(frame.forces);
      force_rows.push_back(at::arange(cell_offset, cell_offset + frame.n_atoms, at::kLong));
    }
    if (frame.virial.defined()) {
      with_virial.push_back(f);
      reference_virial.push_back(frame.virial.reshape({9}));
    }
    cell_offset += frame.n_atoms;
  }
  const at::Tensor n_atoms = at::tensor(atoms_of_frame, at::kDouble);

  BatchErrors errors;
  errors.n_frames = n_frames;
  if (!with_energy.empty())
    errors.energy = (labelled_rows(energies, with_energy) - at::stack(reference_energy)) /
                    labelled_rows(n_atoms, with_energy);
  if (with_forces.empty() && with_virial.empty()) return errors;
  at::Tensor gradient;
  if (energies.requires_grad()) {
    const bool create_graph =
        for_training && ((options_.force_weight > 0 && !with_forces.empty()) || (options_.virial_weight > 0 && !with_virial.empty()));
    gradient = torch::autograd::grad({energies.sum()}, {coords}, {}, /*retain_graph=*/for_training, create_graph,
                                     /*allow_unused=*/true)[0];
  }
  // An energy that does not depend on positions has zero forces.
  const at::Tensor model_forces =
      gradient.defined() ? -gradient.to(at::kDouble) : at::zeros_like(coords, coords.options().requires_grad(false));
  if (!with_forces.empty()) {
    const at::Tensor folded =
        at::zeros({batch.atoms.n_cell_atoms, 3}, model_forces.options()).index_add(0, batch.image_of, model_forces);
    errors.forces = folded.index_select(0, at::cat(force_rows)) - at::cat(reference_forces);
  }
  if (!with_virial.empty()) {
    const at::Tensor atom_virials = (coords.detach().unsqueeze(2) * model_forces.unsqueeze(1)).reshape({-1, 9});
    const at::Tensor virials = at::zeros({n_frames, 9}, model_forces.options()).index_add(0, batch.frame_of_atom, atom_virials);
    errors.virial = (labelled_rows(virials, with_virial) - at::stack(reference_virial)) /
                    labelled_rows(n_atoms, with_virial).unsqueeze(1);
  }
  return errors;
}

template <typename Visit>
void Trainer::for_each_batch(const std::vector<size_t>& frame_indices, Visit&& visit) const {
  for (size_t begin = 0; begin < frame_indices.size(); begin += options_.batch_size) {
    const size_t end = std::min(frame_indices.size(), begin + options_.batch_size);
    visit(std::vector<size_t>(frame_indices.begin() + begin, frame_indices.begin() + end));
  }
}

Errors Trainer::evaluate(const std::vector<size_t>& frame_indices) const {
  ErrorSums sums;
  for_each_batch(frame_indices, [&](const std::vector<size_t>& batch) {
    batch_errors(batch, /*for_training=*/false).add_to(sums);
  });
  return sums.errors(options_);
}

at::Tensor Trainer::batch_loss(const std::vector<size_t>& frame_indices) const {
  return batch_errors(frame_indices, /*for_training=*/true).loss(options_);
}

double Trainer::scheduled_lr(int epoch, double plateau_lr) const {
  if (options_.schedule == Schedule::Plateau) return plateau_lr;
  constexpr double kFinalFraction = 0.01;
  const double lr_min = options_.lr * kFinalFraction;
  const double progress = options_.epochs > 1 ? double(epoch - 1) / double(options_.epochs - 1) : 0.0;
  return lr_min + 0.5 * (options_.lr - lr_min) * (1 + std::cos(M_PI * progress));
}

void Trainer::remember_best() {
  best_parameters_.clear();
  for (const at::Tensor& p : parameters_) best_parameters_.push_back(p.detach().clone());
}

namespace {

// Frames are numbered from 1 in the data file's order; step 0 is the epoch's validation.
std::string non_finite_loss(int epoch, int step, const std::vector<size_t>& frames, double loss) {
  std::string numbers;
  for (size_t k = 0; k < frames.size() && k < 10; ++k) numbers += (k ? ", " : "") + std::to_string(frames[k] + 1);
  if (frames.size() > 10) numbers += ", ...";
  return "epoch " + std::to_string(epoch) + (step > 0 ? ", step " + std::to_string(step) : std::string(", validation")) +
         ": the loss is " + std::to_string(loss) + " on frames " + numbers +
         ": the model gives non-finite energies or forces there (overlapping atoms? a learning rate too high?)";
}

}  // namespace

int Trainer::run(const FitCallbacks& callbacks, const std::atomic<bool>* stop) {
  using Clock = std::chrono::steady_clock;
  std::mt19937_64 generator(options_.seed);
  std::vector<size_t> order = split_.train;
  const int n_steps = static_cast<int>((order.size() + options_.batch_size - 1) / options_.batch_size);
  double best_loss = std::numeric_limits<double>::infinity();
  double plateau_lr = options_.lr;
  int epochs_without_improvement = 0;

  for (int epoch = 1; epoch <= options_.epochs; ++epoch) {
    const Clock::time_point start = Clock::now();
    const double lr = scheduled_lr(epoch, plateau_lr);
    for (auto& group : optimizer_->adam.param_groups()) group.options().set_lr(lr);
    std::shuffle(order.begin(), order.end(), generator);
    ErrorSums sums;
    int step = 0;
    bool stopped = false;
    for_each_batch(order, [&](const std::vector<size_t>& batch) {
      if (stopped) return;
      optimizer_->adam.zero_grad();
      const BatchErrors e = batch_errors(batch, /*for_training=*/true);
      e.add_to(sums);
      const at::Tensor loss = e.loss(options_);
      // A non-finite loss would turn every parameter into NaN at the Adam step.
      if (!std::isfinite(loss.item<double>())) throw Error(non_finite_loss(epoch, step + 1, batch, loss.item<double>()));
      if (loss.requires_grad()) loss.backward();
      optimizer_->adam.step();
      if (callbacks.on_step) callbacks.on_step(epoch, ++step, n_steps, sums.errors(options_));
      stopped = stop && stop->load();
    });
    if (stopped) return epoch - 1;

    EpochReport report;
    report.epoch = epoch;
    report.lr = lr;
    report.train = sums.errors(options_);
    report.validation = evaluate(split_.validation);
    const double monitored = split_.validation.empty() ? report.train.loss : report.validation.loss;
    if (!std::isfinite(monitored))
      throw Error(non_finite_loss(epoch, 0, split_.validation.empty() ? split_.train : split_.validation, monitored));
    if (monitored < best_loss) {
      best_loss = monitored;
      remember_best();
      report.best = true;
      epochs_without_improvement = 0;
    } else if (++epochs_without_improvement >= options_.plateau_patience) {
      plateau_lr = std::max(plateau_lr * options_.plateau_factor, options_.lr * 1e-3);
      epochs_without_improvement = 0;
    }
    report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (callbacks.on_epoch) callbacks.on_epoch(report);
    if (stop && stop->load()) return epoch;
  }
  return options_.epochs;
}

namespace {

// The model's state_dict with the given values for the trainable parameters; tensors the model
// shares between names (aliases) stay shared, so the writer stores them once.
std::vector<std::pair<std::string, at::Tensor>> state_with(const Model& model, const std::vector<at::Tensor>& parameters,
                                                           const std::vector<at::Tensor>& values, at::ScalarType dtype) {
  std::map<const c10::TensorImpl*, at::Tensor> value_of, written;
  for (size_t i = 0; i < parameters.size(); ++i) value_of[parameters[i].unsafeGetTensorImpl()] = values[i];
  std::vector<std::pair<std::string, at::Tensor>> state;
  for (const auto& [name, tensor] : model.state_dict()) {
    const c10::TensorImpl* impl = tensor.unsafeGetTensorImpl();
    auto found = written.find(impl);
    if (found == written.end()) {
      const auto value = value_of.find(impl);
      const at::Tensor source = (value == value_of.end() ? tensor : value->second).detach();
      found = written.emplace(impl, source.to(is_floating(source) ? dtype : source.scalar_type(), /*non_blocking=*/false,
                                              /*copy=*/true)).first;
    }
    state.emplace_back(name, found->second);
  }
  return state;
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> Trainer::best_state(at::ScalarType dtype) const {
  return state_with(model_.model(), parameters_, best_parameters_.empty() ? parameters_ : best_parameters_, dtype);
}

std::vector<std::pair<std::string, at::Tensor>> Trainer::current_state(at::ScalarType dtype) const {
  return state_with(model_.model(), parameters_, parameters_, dtype);
}

std::string checkpoint_path(const std::string& out, int epoch) {
  const size_t slash = out.find_last_of('/');
  const size_t dot = out.find_last_of('.');
  const bool has_extension = dot != std::string::npos && (slash == std::string::npos || dot > slash + 1);
  const std::string stem = has_extension ? out.substr(0, dot) : out;
  const std::string extension = has_extension ? out.substr(dot) : ".pth";
  return stem + ".epoch" + std::to_string(epoch) + extension;
}

}  // namespace klay::fit
