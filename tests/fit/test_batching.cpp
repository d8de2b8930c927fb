// Mini-batches as one disjoint graph, and the virial term:
//  * a batch's loss and parameter gradients are the per-frame losses' and gradients' weighted sum
//    (float64 agreement), for the staged 2-stage NequIP of the conformance data (whose stages the
//    batch regroups) and for frames of different sizes;
//  * the virial W = Σ x ⊗ F over the fed atoms equals −dE/dε by finite strain of the soft-sphere
//    model's energy (evaluate_structure on strained cells), so a frame labelled that way has no
//    virial error.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <cmath>

#include "fit/trainer.hpp"
#include "fit/training_set.hpp"
#include "md/md_model.hpp"
#include "md/structure_eval.hpp"
#include "runtime/model.hpp"
#include "testing/diamond_frames.hpp"
#include "soft_sphere_data.hpp"

namespace {

std::vector<at::Tensor> parameters_of(const klay::md::MdModel& model) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& p : model.model().modules().parameters(/*recurse=*/true))
    if (p.requires_grad()) out.push_back(p);
  return out;
}

// The loss agrees to float64 precision; so does every gradient, relative to the largest one.
void expect_same_loss_and_gradients(const at::Tensor& batch_loss, const at::Tensor& summed_loss,
                                    const std::vector<at::Tensor>& parameters, const std::string& what) {
  const double scale = std::abs(summed_loss.item<double>());
  ASSERT_GT(scale, 0) << what;
  EXPECT_LE(std::abs(batch_loss.item<double>() - summed_loss.item<double>()), 1e-10 * scale) << what;
  const auto batch = torch::autograd::grad({batch_loss}, parameters, {}, true, false, true);
  const auto summed = torch::autograd::grad({summed_loss}, parameters, {}, true, false, true);
  double largest = 0;
  for (size_t i = 0; i < parameters.size(); ++i) {
    if (!summed[i].defined()) continue;
    ASSERT_TRUE(batch[i].defined()) << what << ": parameter " << i;
    largest = std::max(largest, summed[i].abs().max().item<double>());
  }
  ASSERT_GT(largest, 0) << what;
  for (size_t i = 0; i < parameters.size(); ++i) {
    if (!summed[i].defined()) continue;
    EXPECT_LE((batch[i] - summed[i]).abs().max().item<double>(), 1e-10 * largest) << what << ": parameter " << i;
  }
}

// The loss of frames {0,1,2} in one batch against the per-frame losses, for each loss term alone
// (a batch mean: energies and virials weigh each frame 1/B, forces each frame by its atoms).
void check_batching(klay::md::MdModel& model, const std::vector<klay::md::LabelledFrame>& labelled,
                    const std::string& name) {
  const std::vector<size_t> all{0, 1, 2};
  for (int term = 0; term < 3; ++term) {
    klay::fit::FitOptions options;
    options.energy_weight = term == 0;
    options.force_weight = term == 1;
    options.virial_weight = term == 2;
    klay::fit::Trainer trainer(model, klay::fit::prepare_training_frames(model, labelled, name),
                               klay::fit::Split{all, {}}, options);
    double total_atoms = 0;
    for (const auto& f : labelled) total_atoms += static_cast<double>(f.structure.size());
    at::Tensor summed = at::zeros({}, at::kDouble);
    for (size_t i : all) {
      const double weight = term == 1 ? labelled[i].structure.size() / total_atoms : 1.0 / all.size();
      summed = summed + weight * trainer.batch_loss({i});
    }
    expect_same_loss_and_gradients(trainer.batch_loss(all), summed, parameters_of(model),
                                   name + " term " + std::to_string(term));
  }
}

}  // namespace

TEST(Batching, StagedNequipBatchEqualsThePerFrameSum) {
  const std::string dir = std::string(KLAY_CONFORMANCE_DIR) + "/staged_nequip_staged2_si8";
  auto model = klay::md::MdModel::load(dir + "/model.yaml", dir + "/weights.pth");
  ASSERT_EQ(model->num_stages(), 2);
  // Three distorted diamond cells (8 atoms, a = 5.43 Å), different distortions.
  std::vector<klay::md::LabelledFrame> frames = diamond::distorted_frames(3, 7, 0.1);
  diamond::label_arbitrarily(frames);
  check_batching(*model, frames, "staged NequIP");
}

TEST(Batching, FramesOfDifferentSizesBatchExactly) {
  at::manual_seed(1);
  const std::string model_path = std::string(KLAY_TEST_SOURCE_DIR) + "/learnable_soft_sphere.yaml";
  auto model = klay::md::MdModel::load(model_path, "");
  std::vector<klay::md::LabelledFrame> frames = soft_sphere::soft_sphere_frames(3, 4);  // 4, 5, 6 atoms
  diamond::label_arbitrarily(frames);
  check_batching(*model, frames, "soft sphere");
}

// x → (I + ε) x for atoms and cell vectors: dE/dε_kl = Σ_a ∂E/∂x_ak x_al = −W_lk.
TEST(Batching, VirialEqualsMinusTheStrainDerivativeOfTheEnergy) {
  at::manual_seed(2);
  const std::string model_path = std::string(KLAY_TEST_SOURCE_DIR) + "/learnable_soft_sphere.yaml";
  auto model = klay::md::MdModel::load(model_path, "");
  std::vector<klay::md::LabelledFrame> frames = soft_sphere::soft_sphere_frames(3, 9);
  constexpr double h = 1e-5;
  double scale = 0;
  for (auto& frame : frames) {
    std::array<double, 9> virial{};
    for (int k = 0; k < 3; ++k)
      for (int l = 0; l < 3; ++l) {
        double energy[2];
        for (int side = 0; side < 2; ++side) {
          klay::md::Structure strained = frame.structure;
          const double e = side ? h : -h;
          for (int64_t a = 0; a < strained.size(); ++a) strained.positions[3 * a + k] += e * frame.structure.positions[3 * a + l];
          for (int v = 0; v < 3; ++v) strained.cell.vectors[v][k] += e * frame.structure.cell.vectors[v][l];
          energy[side] = klay::md::evaluate_structure(*model, strained).energy;
        }
        virial[3 * l + k] = -(energy[1] - energy[0]) / (2 * h);
        scale = std::max(scale, std::abs(virial[3 * l + k]) / frame.structure.size());
      }
    frame.virial = virial;
  }
  ASSERT_GT(scale, 1e-3);
  klay::fit::FitOptions options;
  options.virial_weight = 1;
  klay::fit::Trainer trainer(*model, klay::fit::prepare_training_frames(*model, frames, "strained"),
                             klay::fit::Split{{0, 1, 2}, {}}, options);
  const klay::fit::Errors errors = trainer.evaluate({0, 1, 2});
  EXPECT_TRUE(errors.has_virials);
  // Central differences of a quartic polynomial energy: error O(h^2) relative.
  EXPECT_LE(errors.virial_rmse, 1e-8 * scale);
}
