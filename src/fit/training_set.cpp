#include "fit/training_set.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "base/error.hpp"

namespace klay::fit {

std::vector<TrainingFrame> prepare_training_frames(md::MdModel& model, const std::vector<md::LabelledFrame>& frames,
                                                   const std::string& source) {
  std::vector<TrainingFrame> prepared;
  prepared.reserve(frames.size());
  for (const md::LabelledFrame& frame : frames) {
    const std::string origin = source + ":" + std::to_string(frame.line) + ": ";
    if (!frame.energy && frame.forces.empty())
      throw Error(origin + "the frame has neither an energy= label nor a forces column; nothing to fit");
    TrainingFrame t;
    t.line = frame.line;
    t.n_atoms = frame.structure.size();
    t.energy = frame.energy;
    try {
      t.prepared = md::prepare_structure(model, frame.structure);
    } catch (const Error& e) {
      throw Error(origin + e.what());
    }
    const int64_t m = t.prepared.n_model_atoms();
    t.coords = at::from_blob(t.prepared.coords.data(), {m, 3}, at::kDouble).clone();
    t.image_of = at::from_blob(t.prepared.image_of.data(), {m}, at::kLong).clone();
    if (!frame.forces.empty())
      t.forces = at::from_blob(const_cast<double*>(frame.forces.data()), {t.n_atoms, 3}, at::kDouble).clone();
    if (frame.virial) t.virial = at::tensor(at::ArrayRef<double>(frame.virial->data(), 9), at::kDouble).reshape({3, 3});
    prepared.push_back(std::move(t));
  }
  return prepared;
}

Split split_frames(size_t n_frames, double validation_fraction, uint64_t seed) {
  if (!(validation_fraction >= 0 && validation_fraction < 1))
    throw Error("the validation fraction must be in [0, 1), got " + std::to_string(validation_fraction));
  size_t n_validation = static_cast<size_t>(std::llround(validation_fraction * static_cast<double>(n_frames)));
  if (validation_fraction > 0 && n_frames >= 2) n_validation = std::max<size_t>(n_validation, 1);
  if (n_validation >= n_frames)
    throw Error("no training frames left: " + std::to_string(n_frames) + " frame(s), " + std::to_string(n_validation) +
                " for validation");
  std::vector<size_t> order(n_frames);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 generator(seed);
  std::shuffle(order.begin(), order.end(), generator);
  Split split;
  split.validation.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n_validation));
  split.train.assign(order.begin() + static_cast<std::ptrdiff_t>(n_validation), order.end());
  std::sort(split.validation.begin(), split.validation.end());
  return split;
}

}  // namespace klay::fit
