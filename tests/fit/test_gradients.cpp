// The parameter gradients `klay fit` descends along: autograd's double backward through the
// forces against central finite differences of the loss itself, for the models the examples fit
// (staged NequIP, staged MACE). A layer whose second derivative autograd got wrong or lost (a
// detach, an op without double backward) trains forces badly while energies still fit; this is
// where that shows. Each loss term alone, float64, a few entries of every parameter tensor.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <cmath>

#include "testing/diamond_frames.hpp"
#include "fit/trainer.hpp"
#include "fit/training_set.hpp"
#include "md/md_model.hpp"
#include "runtime/model.hpp"

namespace {

struct Parameter {
  std::string name;
  at::Tensor tensor;
};

// Each trainable tensor once (an alias shares its target's tensors under more names).
std::vector<Parameter> unique_parameters(const klay::md::MdModel& model) {
  std::vector<Parameter> out;
  for (const auto& [name, tensor] : model.model().state_dict()) {
    if (!tensor.requires_grad()) continue;
    bool seen = false;
    for (const Parameter& p : out) seen = seen || p.tensor.unsafeGetTensorImpl() == tensor.unsafeGetTensorImpl();
    if (!seen) out.push_back({name, tensor});
  }
  return out;
}

void check_gradients(const std::string& case_dir) {
  const std::string dir = std::string(KLAY_CONFORMANCE_DIR) + "/" + case_dir;
  auto model = klay::md::MdModel::load(dir + "/model.yaml", dir + "/weights.pth");
  std::vector<klay::md::LabelledFrame> frames = diamond::distorted_frames(2, 11, 0.15);
  diamond::label_arbitrarily(frames);
  const std::vector<Parameter> parameters = unique_parameters(*model);
  ASSERT_FALSE(parameters.empty());
  constexpr double h = 1e-6;
  constexpr int kEntriesPerTensor = 3;
  for (int term = 0; term < 3; ++term) {
    klay::fit::FitOptions options;
    options.energy_weight = term == 0;
    options.force_weight = term == 1;
    options.virial_weight = term == 2;
    const std::string what = case_dir + (term == 0 ? " energy" : term == 1 ? " forces" : " virial");
    klay::fit::Trainer trainer(*model, klay::fit::prepare_training_frames(*model, frames, case_dir),
                               klay::fit::Split{{0, 1}, {}}, options);
    const std::vector<size_t> batch{0, 1};
    std::vector<at::Tensor> tensors;
    for (const Parameter& p : parameters) tensors.push_back(p.tensor);
    const auto gradients = torch::autograd::grad({trainer.batch_loss(batch)}, tensors, {}, false, false, true);
    double largest = 0;
    for (const at::Tensor& g : gradients)
      if (g.defined()) largest = std::max(largest, g.abs().max().item<double>());
    ASSERT_GT(largest, 0) << what;
    int checked = 0;
    for (size_t i = 0; i < parameters.size(); ++i) {
      at::Tensor flat = parameters[i].tensor.detach().view({-1});
      const at::Tensor gradient = gradients[i].defined() ? gradients[i].reshape({-1}) : at::zeros_like(flat);
      // The entry with the largest gradient and a spread of others.
      std::vector<int64_t> entries{gradient.abs().argmax().item<int64_t>()};
      for (int k = 1; k < kEntriesPerTensor && k < flat.numel(); ++k) entries.push_back(k * flat.numel() / kEntriesPerTensor);
      for (int64_t e : entries) {
        const double original = flat[e].item<double>();
        double loss[2];
        for (int side = 0; side < 2; ++side) {
          flat[e] = original + (side ? h : -h);
          loss[side] = trainer.batch_loss(batch).item<double>();
        }
        flat[e] = original;
        const double finite_difference = (loss[1] - loss[0]) / (2 * h);
        EXPECT_NEAR(gradient[e].item<double>(), finite_difference, 1e-6 * largest)
            << what << ": " << parameters[i].name << "[" << e << "]";
        ++checked;
      }
    }
    EXPECT_GE(checked, static_cast<int>(parameters.size()));
  }
}

}  // namespace

TEST(Gradients, StagedNequipLossGradientsMatchFiniteDifferences) { check_gradients("staged_nequip_staged2_si8"); }

TEST(Gradients, StagedMaceLossGradientsMatchFiniteDifferences) { check_gradients("staged_mace_staged2_si8"); }
