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

#include "runtime/error.hpp"
#include "runtime/model.hpp"

namespace klay::fit {

namespace {

// Sums of squared errors, from which RMSEs and the loss follow.
struct ErrorSums {
  double energy_squared = 0;  // (ΔE/N)^2 summed over frames with an energy
  int64_t n_energies = 0;
  double force_squared = 0;   // ΔF^2 summed over force components
  int64_t n_force_components = 0;
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
    return e;
  }
};

bool is_floating(const at::Tensor& t) { return at::isFloatingType(t.scalar_type()); }

}  // namespace

struct Trainer::Optimizer {
  explicit Optimizer(const std::vector<at::Tensor>& parameters, double lr)
      : adam(parameters, torch::optim::AdamOptions(lr)) {}
  torch::optim::Adam adam;
};

struct Trainer::FrameErrors {
  at::Tensor energy;  // 0-dim (E_model − E_ref)/N, undefined without an energy label
  at::Tensor forces;  // [N,3] F_model − F_ref, undefined without force labels
};

Trainer::Trainer(md::MdModel& model, std::vector<TrainingFrame> frames, Split split, FitOptions options)
    : model_(model), frames_(std::move(frames)), split_(std::move(split)), options_(options) {
  if (options_.epochs < 1) throw Error("--epochs must be at least 1");
  if (options_.batch_size < 1) throw Error("--batch-size must be at least 1");
  if (!(options_.lr > 0)) throw Error("--lr must be positive");
  if (options_.energy_weight < 0 || options_.force_weight < 0 || options_.energy_weight + options_.force_weight <= 0)
    throw Error("the energy and force weights must be non-negative and not both zero");
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

// Forces by autograd through the model; with for_training the graph is kept (and, when forces
// are fitted, made differentiable) for the loss's backward pass.
Trainer::FrameErrors Trainer::frame_errors(const TrainingFrame& frame, bool for_training) const {
  const at::Tensor coords = frame.coords.detach().requires_grad_(true);
  const at::Tensor energy = model_.owned_energy(frame.prepared.view(), coords).to(at::kDouble);
  FrameErrors errors;
  if (frame.energy) errors.energy = (energy - *frame.energy) / static_cast<double>(frame.n_atoms);
  if (!frame.forces.defined()) return errors;
  at::Tensor gradient;
  if (energy.requires_grad()) {
    const bool create_graph = for_training && options_.force_weight > 0;
    gradient = torch::autograd::grad({energy}, {coords}, {}, /*retain_graph=*/for_training, create_graph,
                                     /*allow_unused=*/true)[0];
  }
  // An energy that does not depend on positions has zero forces.
  const at::Tensor model_forces =
      gradient.defined() ? -gradient.to(at::kDouble) : at::zeros_like(coords, coords.options().requires_grad(false));
  const at::Tensor folded = at::zeros({frame.n_atoms, 3}, model_forces.options()).index_add(0, frame.image_of, model_forces);
  errors.forces = folded - frame.forces;
  return errors;
}

Errors Trainer::evaluate(const std::vector<size_t>& frame_indices) const {
  ErrorSums sums;
  for (size_t i : frame_indices) {
    const FrameErrors e = frame_errors(frames_[i], /*for_training=*/false);
    ++sums.n_frames;
    if (e.energy.defined()) {
      sums.energy_squared += e.energy.detach().square().item<double>();
      ++sums.n_energies;
    }
    if (e.forces.defined()) {
      sums.force_squared += e.forces.detach().square().sum().item<double>();
      sums.n_force_components += e.forces.numel();
    }
  }
  return sums.errors(options_);
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
    for (int step = 0; step < n_steps; ++step) {
      const size_t begin = static_cast<size_t>(step) * options_.batch_size;
      const size_t end = std::min(order.size(), begin + options_.batch_size);
      // The batch loss is a mean over the batch's labelled energies and force components.
      int64_t n_energies = 0, n_force_components = 0;
      for (size_t k = begin; k < end; ++k) {
        const TrainingFrame& frame = frames_[order[k]];
        n_energies += frame.energy ? 1 : 0;
        n_force_components += frame.forces.defined() ? frame.forces.numel() : 0;
      }
      optimizer_->adam.zero_grad();
      for (size_t k = begin; k < end; ++k) {
        const FrameErrors e = frame_errors(frames_[order[k]], /*for_training=*/true);
        at::Tensor loss = at::zeros({}, at::kDouble);
        ++sums.n_frames;
        if (e.energy.defined()) {
          loss = loss + options_.energy_weight / n_energies * e.energy.square();
          sums.energy_squared += e.energy.detach().square().item<double>();
          ++sums.n_energies;
        }
        if (e.forces.defined()) {
          loss = loss + options_.force_weight / n_force_components * e.forces.square().sum();
          sums.force_squared += e.forces.detach().square().sum().item<double>();
          sums.n_force_components += e.forces.numel();
        }
        if (loss.requires_grad()) loss.backward();
      }
      optimizer_->adam.step();
      if (callbacks.on_step) callbacks.on_step(epoch, step + 1, n_steps, sums.errors(options_));
      if (stop && stop->load()) return epoch - 1;
    }

    EpochReport report;
    report.epoch = epoch;
    report.lr = lr;
    report.train = sums.errors(options_);
    report.validation = evaluate(split_.validation);
    const double monitored = split_.validation.empty() ? report.train.loss : report.validation.loss;
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
