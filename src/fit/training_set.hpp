// Labelled structures made ready for training: each frame's model atoms and graphs are built once
// (md/structure_eval's prepare_structure, so a model is fed exactly as in MD and `klay eval`) and
// its labels held as tensors.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include <ATen/core/Tensor.h>

#include "md/md_model.hpp"
#include "md/structure_eval.hpp"
#include "md/xyz.hpp"

namespace klay::fit {

struct TrainingFrame {
  md::PreparedStructure prepared;
  at::Tensor coords;                  // [n_model_atoms,3] float64, the prepared coordinates
  at::Tensor image_of;                // [n_model_atoms] int64: unit-cell atom of each model atom
  int64_t n_atoms = 0;                // unit-cell atoms
  std::optional<double> energy;       // eV
  at::Tensor forces;                  // [n_atoms,3] float64 eV/Å, undefined without labels
  at::Tensor virial;                  // [3,3] float64 eV (Σ x ⊗ F), undefined without a label
  int line = 0;                       // where the frame starts in its file, for messages
};

// Throws klay::Error "SOURCE:LINE: ..." for a frame without energy and forces or with an element
// the model does not know.
std::vector<TrainingFrame> prepare_training_frames(md::MdModel& model, const std::vector<md::LabelledFrame>& frames,
                                                   const std::string& source);

struct Split {
  std::vector<size_t> train, validation;  // frame indices
};

// A seeded random split: round(fraction·N) validation frames (at least one when fraction > 0 and
// N >= 2), the rest for training. Throws klay::Error when no training frame would be left.
Split split_frames(size_t n_frames, double validation_fraction, uint64_t seed);

}  // namespace klay::fit
