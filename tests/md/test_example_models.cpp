// The example models are rotation invariant: energy unchanged and forces rotated with the
// structure, for their shipped weights and for random ones. A model whose layers are each
// equivariant can still break this in its YAML: examples/si declared its second convolution's
// input as 0e+1o+2e while the first one outputs 0e+2e+1o (scalars, then the gated irreps with
// even parity first), which scrambled the l = 1 and l = 2 features and left the fitted model
// without bond-angle stiffness (C11 = C12, relaxed C44 = 0).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <random>
#include <string>

#include "kernels/edge_vectors.hpp"
#include "kernels/gate.hpp"
#include "kernels/radial_basis.hpp"
#include "kernels/radial_mlp.hpp"
#include "kernels/self_connection.hpp"
#include "kernels/spherical_harmonics.hpp"
#include "kernels/uvu_convolution.hpp"
#include "md/md_model.hpp"
#include "md/structure_eval.hpp"
#include "md/xyz.hpp"
#include "runtime/model.hpp"
#include "testing/diamond_frames.hpp"

namespace {

// R v for a fixed proper rotation (Euler angles 0.3, 1.1, -0.7).
std::array<double, 3> rotate(const std::array<double, 3>& v) {
  const double a = 0.3, b = 1.1, c = -0.7;
  const double rz[3][3] = {{std::cos(a), -std::sin(a), 0}, {std::sin(a), std::cos(a), 0}, {0, 0, 1}};
  const double ry[3][3] = {{std::cos(b), 0, std::sin(b)}, {0, 1, 0}, {-std::sin(b), 0, std::cos(b)}};
  const double rx[3][3] = {{1, 0, 0}, {0, std::cos(c), -std::sin(c)}, {0, std::sin(c), std::cos(c)}};
  auto apply = [](const double m[3][3], const std::array<double, 3>& x) {
    return std::array<double, 3>{m[0][0] * x[0] + m[0][1] * x[1] + m[0][2] * x[2],
                                 m[1][0] * x[0] + m[1][1] * x[1] + m[1][2] * x[2],
                                 m[2][0] * x[0] + m[2][1] * x[1] + m[2][2] * x[2]};
  };
  return apply(rz, apply(ry, apply(rx, v)));
}

klay::md::Structure rotated(const klay::md::Structure& s) {
  klay::md::Structure out = s;
  for (int k = 0; k < 3; ++k) {
    const auto v = rotate({s.cell.vectors[k][0], s.cell.vectors[k][1], s.cell.vectors[k][2]});
    for (int c = 0; c < 3; ++c) out.cell.vectors[k][c] = v[c];
  }
  for (int64_t a = 0; a < s.size(); ++a) {
    const auto p = rotate({s.positions[3 * a], s.positions[3 * a + 1], s.positions[3 * a + 2]});
    for (int c = 0; c < 3; ++c) out.positions[3 * a + c] = p[c];
  }
  return out;
}

void expect_invariant(const std::string& example, bool shipped_weights) {
  const std::string dir = std::string(KLAY_EXAMPLES_DIR) + "/" + example;
  at::manual_seed(9);
  auto model = klay::md::MdModel::load(dir + "/model.yaml", shipped_weights ? dir + "/model.pth" : "");
  // Strained and displaced: no symmetry left to hide a scrambled feature.
  std::mt19937_64 generator(5);
  const klay::md::Structure structure = diamond::distorted_cell(2, {1.02, 1.0, 0.99}, generator, 0.08);
  const klay::md::StructureResult before = klay::md::evaluate_structure(*model, structure);
  const klay::md::StructureResult after = klay::md::evaluate_structure(*model, rotated(structure));
  const std::string what = example + (shipped_weights ? " (shipped weights)" : " (random weights)");
  EXPECT_NEAR(after.energy, before.energy, 1e-11 * std::abs(before.energy)) << what;
  double largest = 0, worst = 0;
  for (int64_t a = 0; a < structure.size(); ++a) {
    const auto expected = rotate({before.forces[3 * a], before.forces[3 * a + 1], before.forces[3 * a + 2]});
    for (int c = 0; c < 3; ++c) {
      largest = std::max(largest, std::abs(expected[c]));
      worst = std::max(worst, std::abs(after.forces[3 * a + c] - expected[c]));
    }
  }
  ASSERT_GT(largest, 1e-3) << what;
  EXPECT_LE(worst, 1e-10 * largest) << what;
}

}  // namespace

TEST(ExampleModels, SiliconNequipIsRotationInvariant) {
  expect_invariant("si", false);
  expect_invariant("si", true);
}

TEST(ExampleModels, SiliconMaceIsRotationInvariant) {
  expect_invariant("mace_si", false);
  expect_invariant("mace_si", true);
}

// MD evaluates the convolutions with their radial MLPs inside the fused kernel (forward and
// backward) and computes the per-edge features once, for the largest staged graph (the second
// stage's alias calls take its first rows); the energy and forces are those of the composite path.
namespace {

void expect_fused_kernels_exact(const std::string& example) {
  const std::string dir = std::string(KLAY_EXAMPLES_DIR) + "/" + example;
  auto model = klay::md::MdModel::load(dir + "/model.yaml", dir + "/model.pth");
  std::mt19937_64 generator(8);
  const klay::md::Structure structure = diamond::distorted_cell(2, {1.01, 0.98, 1.0}, generator, 0.1);
  using klay::kernels::KernelCounters;
  const KernelCounters before = klay::kernels::radial_convolution_counters();
  const KernelCounters separate_before = klay::kernels::kernel_counters();
  const KernelCounters mlp_before = klay::kernels::radial_mlp_counters();
  const int64_t reused_before = model->model().reused_row_calls();
  const klay::md::StructureResult fused = klay::md::evaluate_structure(*model, structure);
  const KernelCounters after = klay::kernels::radial_convolution_counters();
  EXPECT_EQ(after.forward_calls - before.forward_calls, 2) << example << ": both convolutions fused with their MLPs";
  EXPECT_EQ(after.backward_calls - before.backward_calls, 2) << example;
  EXPECT_EQ(after.composite_backward_calls, before.composite_backward_calls) << example;
  EXPECT_EQ(klay::kernels::kernel_counters().forward_calls, separate_before.forward_calls) << example;
  EXPECT_EQ(klay::kernels::radial_mlp_counters().forward_calls, mlp_before.forward_calls)
      << example << ": no radial MLP evaluated on its own";
  EXPECT_EQ(model->model().reused_row_calls() - reused_before, 2) << example << ": edge features and radial basis";
  klay::kernels::set_fused_kernels_enabled(false);
  const klay::md::StructureResult composite = klay::md::evaluate_structure(*model, structure);
  klay::kernels::set_fused_kernels_enabled(true);
  EXPECT_EQ(klay::kernels::radial_convolution_counters().forward_calls, after.forward_calls);
  EXPECT_EQ(klay::kernels::kernel_counters().forward_calls, separate_before.forward_calls);
  EXPECT_EQ(klay::kernels::radial_mlp_counters().forward_calls, mlp_before.forward_calls);
  EXPECT_NEAR(fused.energy, composite.energy, 1e-12 * std::abs(composite.energy)) << example;
  double largest = 0, worst = 0;
  for (size_t k = 0; k < composite.forces.size(); ++k) {
    largest = std::max(largest, std::abs(composite.forces[k]));
    worst = std::max(worst, std::abs(fused.forces[k] - composite.forces[k]));
  }
  ASSERT_GT(largest, 1e-3) << example;
  EXPECT_LE(worst, 1e-12 * largest) << example;
}

// Energy and forces of the example's shipped model on a distorted 2x2x2 diamond cell.
void evaluate_shipped_model(const std::string& example) {
  const std::string dir = std::string(KLAY_EXAMPLES_DIR) + "/" + example;
  auto model = klay::md::MdModel::load(dir + "/model.yaml", dir + "/model.pth");
  std::mt19937_64 generator(3);
  klay::md::evaluate_structure(*model, diamond::distorted_cell(2, {1.0, 1.02, 0.99}, generator, 0.1));
}

}  // namespace

TEST(ExampleModels, SiliconNequipRunsTheFusedKernelsExactly) { expect_fused_kernels_exact("si"); }
TEST(ExampleModels, SiliconMaceRunsTheFusedKernelsExactly) { expect_fused_kernels_exact("mace_si"); }

// The same evaluations also gate and self-connect through their kernels: the NequIP model's two
// ConvNetLayers (the second restricted to the scalars its energy reads), the MACE model's two skip
// products. The first layer's self-connection reads only the elements (no gradient to positions),
// so one self-connection backward. expect_fused_kernels_exact compares them with the composite.
TEST(ExampleModels, SiliconModelsGateAndSelfConnectThroughTheirKernels) {
  for (const std::string example : {"si", "mace_si"}) {
    const klay::kernels::KernelCounters gates = klay::kernels::gate_counters();
    const klay::kernels::KernelCounters self_connections = klay::kernels::self_connection_counters();
    evaluate_shipped_model(example);
    const int64_t gate_calls = example == "si" ? 2 : 0;
    EXPECT_EQ(klay::kernels::gate_counters().forward_calls - gates.forward_calls, gate_calls) << example;
    EXPECT_EQ(klay::kernels::gate_counters().backward_calls - gates.backward_calls, gate_calls) << example;
    EXPECT_EQ(klay::kernels::self_connection_counters().forward_calls - self_connections.forward_calls, 2) << example;
    EXPECT_EQ(klay::kernels::self_connection_counters().backward_calls - self_connections.backward_calls, 1)
        << example;
  }
}

// Both models encode their edge lengths (one RadialBasisEdgeEncoding, evaluated once on the
// largest staged graph's edges) through the radial basis kernel, forward and backward (forces);
// expect_fused_kernels_exact compares it with the composite.
TEST(ExampleModels, SiliconModelsEncodeEdgeLengthsThroughTheRadialBasisKernel) {
  for (const std::string example : {"si", "mace_si"}) {
    const klay::kernels::KernelCounters before = klay::kernels::radial_basis_edge_encoding_counters();
    evaluate_shipped_model(example);
    const klay::kernels::KernelCounters after = klay::kernels::radial_basis_edge_encoding_counters();
    EXPECT_EQ(after.forward_calls - before.forward_calls, 1) << example;
    EXPECT_EQ(after.backward_calls - before.backward_calls, 1) << example;
  }
}

// An energy model's last convolution feeds only its scalars to the readout: MD computes only those
// (one restricted layer call per evaluation) and gets the energy and forces of the whole model.
TEST(ExampleModels, SiliconNequipComputesOnlyTheFeaturesItsEnergyReads) {
  const std::string dir = std::string(KLAY_EXAMPLES_DIR) + "/si";
  for (bool shipped_weights : {true, false}) {
    at::manual_seed(4);
    auto pruned = klay::md::MdModel::load(dir + "/model.yaml", shipped_weights ? dir + "/model.pth" : "");
    at::manual_seed(4);
    auto whole = klay::md::MdModel::load(dir + "/model.yaml", shipped_weights ? dir + "/model.pth" : "");
    whole->model().set_feature_pruning(false);
    std::mt19937_64 generator(3);
    const klay::md::Structure structure = diamond::distorted_cell(2, {1.0, 1.02, 0.99}, generator, 0.1);
    const int64_t restricted_before = pruned->model().restricted_calls();
    const klay::md::StructureResult fast = klay::md::evaluate_structure(*pruned, structure);
    const klay::md::StructureResult reference = klay::md::evaluate_structure(*whole, structure);
    EXPECT_EQ(pruned->model().restricted_calls() - restricted_before, 1) << "conv2";
    EXPECT_EQ(whole->model().restricted_calls(), 0);
    EXPECT_NEAR(fast.energy, reference.energy, 1e-12 * std::abs(reference.energy));
    double largest = 0, worst = 0;
    for (size_t k = 0; k < reference.forces.size(); ++k) {
      largest = std::max(largest, std::abs(reference.forces[k]));
      worst = std::max(worst, std::abs(fast.forces[k] - reference.forces[k]));
    }
    ASSERT_GT(largest, 1e-3);
    EXPECT_LE(worst, 1e-12 * largest) << (shipped_weights ? "shipped" : "random") << " weights";
  }
}

// MD evaluates the edge vectors and spherical harmonics with their kernels, forward and backward:
// both models' SphericalHarmonicEdgeAttrs (once, for the largest staged graph; the MACE model's
// edge lengths feed its radial basis) and the MACE model's two MACE_layers, which take edge
// vectors. The energy and forces are those of the composite path (expect_fused_kernels_exact
// switches every kernel off and compares).
TEST(ExampleModels, SiliconModelsEvaluateTheirEdgeGeometryThroughTheKernels) {
  for (const std::string example : {"si", "mace_si"}) {
    const std::string dir = std::string(KLAY_EXAMPLES_DIR) + "/" + example;
    auto model = klay::md::MdModel::load(dir + "/model.yaml", dir + "/model.pth");
    std::mt19937_64 generator(6);
    const klay::md::Structure structure = diamond::distorted_cell(2, {0.99, 1.01, 1.0}, generator, 0.1);
    const klay::kernels::KernelCounters vectors_before = klay::kernels::edge_vectors_counters();
    const klay::kernels::KernelCounters before = klay::kernels::spherical_harmonics_counters();
    klay::md::evaluate_structure(*model, structure);
    const klay::kernels::KernelCounters vectors_after = klay::kernels::edge_vectors_counters();
    const klay::kernels::KernelCounters after = klay::kernels::spherical_harmonics_counters();
    EXPECT_EQ(vectors_after.forward_calls - vectors_before.forward_calls, 1) << example;
    EXPECT_EQ(vectors_after.backward_calls - vectors_before.backward_calls, 1) << example;
    const int64_t calls = example == "si" ? 1 : 3;
    EXPECT_EQ(after.forward_calls - before.forward_calls, calls) << example;
    EXPECT_EQ(after.backward_calls - before.backward_calls, calls) << example;
    EXPECT_EQ(after.composite_backward_calls, before.composite_backward_calls) << example;
  }
}
