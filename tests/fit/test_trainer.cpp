// The trainer on a problem with a known answer: frames labelled by the soft-sphere pair potential
// in closed form (prefactor 0.05, computed here by brute force over periodic images, not by any
// model), and a model that is that potential with a learnable prefactor
// (learnable_soft_sphere.yaml). A correct fit drives the weight to 0.05 and the loss to zero.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <filesystem>

#include "fit/trainer.hpp"
#include "fit/training_set.hpp"
#include "md/md_model.hpp"
#include "base/json.hpp"
#include "runtime/model.hpp"
#include "soft_sphere_data.hpp"
#include "weights/state_dict.hpp"
#include "weights/torch_save_writer.hpp"

namespace fs = std::filesystem;

namespace {

using namespace soft_sphere;

const std::string kModel = std::string(KLAY_TEST_SOURCE_DIR) + "/learnable_soft_sphere.yaml";
const fs::path kOutput = KLAY_TEST_OUTPUT_DIR;
constexpr const char* kWeightName = "edge_energy.module.weight";

double learned_prefactor(const klay::md::MdModel& model) {
  for (const auto& [name, tensor] : model.model().state_dict())
    if (name == kWeightName) return tensor.item<double>();
  ADD_FAILURE() << "no " << kWeightName;
  return NAN;
}

struct FitResult {
  std::vector<klay::fit::EpochReport> epochs;
  klay::fit::Errors initial_validation;
  double prefactor = 0;
};

FitResult fit_soft_sphere(bool single_precision, klay::fit::FitOptions options) {
  at::manual_seed(3);
  auto model = klay::md::MdModel::load(kModel, "", single_precision);
  auto frames = klay::fit::prepare_training_frames(*model, soft_sphere_frames(12, 11), "synthetic");
  klay::fit::Trainer trainer(*model, std::move(frames), klay::fit::split_frames(12, 0.25, 5), options);
  EXPECT_EQ(trainer.n_parameters(), 1u);
  FitResult result;
  result.initial_validation = trainer.evaluate(klay::fit::split_frames(12, 0.25, 5).validation);
  klay::fit::FitCallbacks callbacks;
  callbacks.on_epoch = [&](const klay::fit::EpochReport& r) { result.epochs.push_back(r); };
  EXPECT_EQ(trainer.run(callbacks), options.epochs);
  // The best state is what --out gets: it must load into the model (strict names and shapes).
  const fs::path out = kOutput / (single_precision ? "soft_sphere32.pth" : "soft_sphere64.pth");
  fs::create_directories(kOutput);
  klay::write_torch_save(out.string(), trainer.best_state(at::kDouble));
  auto reloaded = klay::md::MdModel::load(kModel, out.string());
  result.prefactor = learned_prefactor(*reloaded);
  EXPECT_EQ(klay::load_state_dict(out.string()).find(kWeightName)->scalar_type(), at::kDouble);
  return result;
}

// 400 epochs of the cosine schedule from lr 0.02: enough to pin the single weight down.
klay::fit::FitOptions prefactor_fit_options(int batch_size) {
  klay::fit::FitOptions options;
  options.epochs = 400;
  options.batch_size = batch_size;
  options.lr = 0.02;
  return options;
}

}  // namespace

// The loss is quadratic in the weight w: loss(w) = C (w - p)^2 with loss(w0) known at the start,
// so |w - p| < 1e-6 p means loss < loss(w0) (1e-6 p / (w0 - p))^2 — far below the start.
TEST(Trainer, LearnsTheSoftSpherePrefactorInFloat64) {
  const FitResult result = fit_soft_sphere(false, prefactor_fit_options(3));
  ASSERT_EQ(result.epochs.size(), 400u);
  EXPECT_NEAR(result.prefactor, kPrefactor, 1e-6 * kPrefactor);
  const klay::fit::EpochReport& last = result.epochs.back();
  EXPECT_EQ(last.validation.n_frames, 3);
  EXPECT_GT(result.initial_validation.loss, 1e-3);
  EXPECT_LT(last.validation.loss, 1e-10 * result.initial_validation.loss);
  EXPECT_LT(last.validation.energy_rmse, 1e-6);  // eV/atom
  EXPECT_LT(last.validation.force_rmse, 1e-5);   // eV/Å
  // Cosine schedule: lr at the first and last epoch.
  EXPECT_DOUBLE_EQ(result.epochs.front().lr, 0.02);
  EXPECT_NEAR(last.lr, 0.02 * 0.01, 1e-15);
}

TEST(Trainer, LearnsTheSoftSpherePrefactorInFloat32AndWritesFloat64) {
  const FitResult result = fit_soft_sphere(true, prefactor_fit_options(4));
  // float32 resolves the weight to about 1e-7 relative; the loss's noise floor is a little above.
  EXPECT_NEAR(result.prefactor, kPrefactor, 1e-4 * kPrefactor);
  EXPECT_LT(result.epochs.back().validation.loss, 1e-6 * result.initial_validation.loss);
}

// Reduce-on-plateau: the rate is halved exactly when `patience` epochs in a row brought no better
// validation loss, and never goes below lr·1e-3.
TEST(Trainer, PlateauScheduleHalvesTheRateAfterPatienceEpochsWithoutImprovement) {
  klay::fit::FitOptions options;
  options.epochs = 150;
  options.lr = 0.02;
  options.schedule = klay::fit::Schedule::Plateau;
  options.plateau_patience = 3;
  const FitResult result = fit_soft_sphere(false, options);
  int since_best = 0, cuts = 0;
  double expected_lr = options.lr;
  for (const klay::fit::EpochReport& r : result.epochs) {
    EXPECT_DOUBLE_EQ(r.lr, expected_lr) << "epoch " << r.epoch;
    since_best = r.best ? 0 : since_best + 1;
    if (since_best == options.plateau_patience) {
      expected_lr = std::max(expected_lr * options.plateau_factor, options.lr * 1e-3);
      since_best = 0;
      ++cuts;
    }
  }
  EXPECT_GT(cuts, 0);
  EXPECT_NEAR(result.prefactor, kPrefactor, 1e-2 * kPrefactor);
}

TEST(Trainer, EnergyOnlyAndForceOnlyFitsConverge) {
  for (const bool forces : {false, true}) {
    klay::fit::FitOptions options;
    options.epochs = 400;
    options.lr = 0.02;
    options.energy_weight = forces ? 0 : 1;
    options.force_weight = forces ? 1 : 0;
    EXPECT_NEAR(fit_soft_sphere(false, options).prefactor, kPrefactor, 1e-5 * kPrefactor) << "forces " << forces;
  }
}

TEST(Trainer, SplitIsSeededDisjointAndComplete) {
  const klay::fit::Split a = klay::fit::split_frames(50, 0.1, 42), b = klay::fit::split_frames(50, 0.1, 42);
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.validation, b.validation);
  EXPECT_EQ(a.validation.size(), 5u);
  std::vector<size_t> all = a.train;
  all.insert(all.end(), a.validation.begin(), a.validation.end());
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], i);
  EXPECT_NE(klay::fit::split_frames(50, 0.1, 43).validation, a.validation);
  EXPECT_EQ(klay::fit::split_frames(3, 0.1, 0).validation.size(), 1u);  // at least one
  EXPECT_TRUE(klay::fit::split_frames(3, 0.0, 0).validation.empty());
  EXPECT_THROW(klay::fit::split_frames(1, 0.5, 0), std::exception);
  EXPECT_THROW(klay::fit::split_frames(10, 1.0, 0), std::exception);
}

TEST(Trainer, CheckpointNamesDeriveFromTheOutput) {
  EXPECT_EQ(klay::fit::checkpoint_path("model.pth", 10), "model.epoch10.pth");
  EXPECT_EQ(klay::fit::checkpoint_path("runs/si.v2/best.pth", 3), "runs/si.v2/best.epoch3.pth");
  EXPECT_EQ(klay::fit::checkpoint_path("runs/si.v2/best", 3), "runs/si.v2/best.epoch3.pth");
}

TEST(Trainer, FramesWithoutLabelsAreRefusedWithTheirLine) {
  at::manual_seed(0);
  auto model = klay::md::MdModel::load(kModel, "");
  std::vector<klay::md::LabelledFrame> frames = soft_sphere_frames(2, 1);
  frames[1].energy.reset();
  frames[1].forces.clear();
  frames[1].line = 17;
  try {
    klay::fit::prepare_training_frames(*model, frames, "data.xyz");
    FAIL() << "an unlabelled frame was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("data.xyz:17: "), std::string::npos) << e.what();
  }
}

namespace {

std::vector<double> flat_numbers(const klay::json::Value& value) {
  std::vector<double> out;
  if (value.is_number()) return {value.as_double()};
  for (const klay::json::Value& item : value.items) {
    const std::vector<double> inner = flat_numbers(item);
    out.insert(out.end(), inner.begin(), inner.end());
  }
  return out;
}

// A conformance staged case's reference structure labelled with real KLay's energy and folded
// forces (every atom species index 0, so "Si" gets index 0).
klay::md::LabelledFrame reference_frame(const klay::json::Value& reference) {
  const klay::json::Value& structure = *reference.find("structure");
  klay::md::LabelledFrame frame;
  const std::vector<double> cell = flat_numbers(*structure.find("cell"));
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) frame.structure.cell.vectors[r][c] = cell[3 * r + c];
    frame.structure.cell.periodic[r] = true;
  }
  frame.structure.has_lattice = true;
  frame.structure.positions = flat_numbers(*structure.find("unit_cell_positions"));
  for (double species : flat_numbers(*structure.find("unit_cell_species_index"))) {
    EXPECT_EQ(species, 0.0);
    frame.structure.elements.push_back("Si");
  }
  frame.energy = reference.find("energy")->as_double();
  frame.forces = flat_numbers(*reference.find("forces_folded")->find("data"));
  return frame;
}

}  // namespace

// The trainer feeds a model as MD does: with the weights real KLay was run with, its errors on the
// reference structure are zero to float64 agreement, and a training step runs the double backward
// through every layer of the staged NequIP and MACE models.
TEST(Trainer, ConformanceWeightsHaveNoErrorOnTheirReferenceAndTrainingSteps) {
  for (const char* name : {"staged_nequip_staged2_si8", "staged_mace_staged2_si8"}) {
    const std::string dir = std::string(KLAY_CONFORMANCE_DIR) + "/" + name;
    const klay::json::Value reference = klay::json::parse_file(dir + "/reference.json");
    const klay::md::LabelledFrame frame = reference_frame(reference);
    const double energy_scale = std::abs(*frame.energy) / frame.structure.size();
    double force_scale = 0;
    for (double f : frame.forces) force_scale = std::max(force_scale, std::abs(f));

    auto model = klay::md::MdModel::load(dir + "/model.yaml", dir + "/weights.pth");
    auto frames = klay::fit::prepare_training_frames(*model, {frame, frame}, name);
    klay::fit::FitOptions options;
    options.epochs = 1;
    options.lr = 1e-3;
    klay::fit::Trainer trainer(*model, std::move(frames), klay::fit::split_frames(2, 0.5, 0), options);
    const klay::fit::Errors before = trainer.evaluate({0, 1});
    EXPECT_LE(before.energy_rmse, 1e-10 * energy_scale) << name;
    EXPECT_LE(before.force_rmse, 1e-10 * force_scale) << name;

    const auto initial = trainer.current_state(at::kDouble);
    std::vector<klay::fit::EpochReport> reports;
    EXPECT_EQ(trainer.run({nullptr, [&](const klay::fit::EpochReport& r) { reports.push_back(r); }}), 1);
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_TRUE(std::isfinite(reports[0].validation.loss)) << name;
    EXPECT_GT(reports[0].validation.loss, before.loss) << name << ": the step moved no parameter";
    const auto after = trainer.current_state(at::kDouble);
    size_t changed = 0;
    for (size_t i = 0; i < after.size(); ++i) changed += at::equal(after[i].second, initial[i].second) ? 0 : 1;
    EXPECT_GT(changed, 0u) << name;
  }
}
