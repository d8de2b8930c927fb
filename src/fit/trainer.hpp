// Fitting a KLay model's parameters to labelled structures (`klay fit`, issue #6):
//   loss = w_E · mean_frames((ΔE / N)^2) + w_F · mean_components(ΔF^2) + w_V · mean((ΔW / N)^2)
// over a mini-batch, with F = −∂E/∂x by autograd (create_graph, so the loss differentiates through
// the forces), the padding images' forces folded onto their unit-cell atoms, and the virial
// W = Σ_a x_a ⊗ F_a over all fed atoms, images included (the periodic system's virial, LAMMPS's and
// ASE's sign; its 9 components, frames with a virial label only). A mini-batch is one disjoint
// graph (the frames' owned atoms first, then their images), so one forward and one double
// backward pass serve all its frames; frame energies are sums of per-atom energies by frame.
// Adam, with a cosine schedule from lr to lr·0.01 over the epochs (default) or a
// reduce-on-plateau schedule on the validation loss.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "fit/training_set.hpp"
#include "md/md_model.hpp"

namespace klay::fit {

enum class Schedule { Cosine, Plateau };

struct FitOptions {
  int epochs = 100;
  int batch_size = 4;
  double lr = 1e-2;
  double energy_weight = 1;
  double force_weight = 1;
  double virial_weight = 0;      // elastic constants come from energies under strain already
  Schedule schedule = Schedule::Cosine;
  int plateau_patience = 10;     // epochs without a better validation loss before lr is cut
  double plateau_factor = 0.5;   // lr multiplier on a plateau; never below lr·1e-3
  uint64_t seed = 0;             // batch order
};

// Root-mean-square errors and the loss over a set of frames.
struct Errors {
  double energy_rmse = 0;  // eV/atom
  double force_rmse = 0;   // eV/Å
  double virial_rmse = 0;  // eV/atom, over the 9 components of frames with a virial label
  bool has_virials = false;
  double loss = 0;
  int64_t n_frames = 0;
};

struct EpochReport {
  int epoch = 0;       // 1-based
  double lr = 0;       // used during the epoch
  Errors train;        // accumulated over the epoch's steps (parameters changing meanwhile)
  Errors validation;   // at the end of the epoch; n_frames 0 without a validation set
  double seconds = 0;
  bool best = false;   // the best (validation, else training) loss so far
};

struct FitCallbacks {
  // After every optimizer step: step and steps of this epoch, running training errors.
  std::function<void(int epoch, int step, int n_steps, const Errors& running)> on_step;
  std::function<void(const EpochReport&)> on_epoch;
};

class Trainer {
 public:
  // `frames` from prepare_training_frames with the same model; split indices into it.
  Trainer(md::MdModel& model, std::vector<TrainingFrame> frames, Split split, FitOptions options);
  ~Trainer();

  // Trains until the epochs are done or `stop` becomes true (checked after every step). Returns
  // the number of completed epochs.
  int run(const FitCallbacks& callbacks, const std::atomic<bool>* stop = nullptr);

  // Errors of the current parameters on some frames (no parameter gradients).
  Errors evaluate(const std::vector<size_t>& frame_indices) const;

  // The loss of one mini-batch (a mean over its labels), differentiable in the parameters.
  at::Tensor batch_loss(const std::vector<size_t>& frame_indices) const;

  // The model's state_dict (aliases' duplicate names included, sharing storage) with floating
  // tensors cast to `dtype`: the best parameters seen (by validation loss, or training loss
  // without validation frames), or the current ones before the first epoch ends.
  std::vector<std::pair<std::string, at::Tensor>> best_state(at::ScalarType dtype) const;
  std::vector<std::pair<std::string, at::Tensor>> current_state(at::ScalarType dtype) const;

  size_t n_parameters() const;  // trainable scalars, each shared parameter counted once

 private:
  struct BatchErrors;
  BatchErrors batch_errors(const std::vector<size_t>& frame_indices, bool for_training) const;
  // Evaluates `frame_indices` in mini-batches of options_.batch_size.
  template <typename Visit>
  void for_each_batch(const std::vector<size_t>& frame_indices, Visit&& visit) const;
  void remember_best();
  double scheduled_lr(int epoch, double plateau_lr) const;

  md::MdModel& model_;
  std::vector<TrainingFrame> frames_;
  Split split_;
  FitOptions options_;
  std::vector<at::Tensor> parameters_;  // unique trainable parameters
  struct Optimizer;
  std::unique_ptr<Optimizer> optimizer_;
  std::vector<at::Tensor> best_parameters_;  // copies, parallel to parameters_; empty: none yet
};

// "dir/model.pth", 12 -> "dir/model.epoch12.pth".
std::string checkpoint_path(const std::string& out, int epoch);

}  // namespace klay::fit
