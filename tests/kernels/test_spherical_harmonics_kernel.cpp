// The spherical harmonics kernel against e3nn::spherical_harmonics and e3nn::vector_lengths (the
// composite path): values and vector gradients in float64 to rounding for lmax 1 to 6 (closed forms
// and the 3j recursion), the three normalisations, with and without normalising the vectors, the
// harmonics, the lengths or both differentiated; zero and tiny vectors (the length floor); second
// derivatives (training's force loss); float32 and any thread count.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "e3nn/spherical_harmonics.hpp"
#include "kernels/one_input_derivatives.hpp"
#include "kernels/relative_error.hpp"
#include "kernels/spherical_harmonics.hpp"
#include "kernels/vector_units.hpp"

namespace klay::kernels {
namespace {

using e3nn::ShNormalization;

constexpr int kLargestLmax = 6;

// What is differentiated: the harmonics alone (spherical_harmonics), or from
// lengths_and_spherical_harmonics the lengths alone or both, the lengths as a first column.
enum class Output { harmonics, lengths, both };

struct Options {
  int lmax;
  bool normalize;
  ShNormalization normalization;
  Output output = Output::harmonics;
  std::string name() const {
    const char* normalizations[] = {"component", "norm", "integral"};
    const char* outputs[] = {"harmonics", "lengths", "lengths and harmonics"};
    return std::string(outputs[static_cast<int>(output)]) + ", lmax " + std::to_string(lmax) +
           (normalize ? " normalized " : " raw ") + normalizations[static_cast<int>(normalization)];
  }
};

// lmax ≥ 1: Y^0 alone is a constant, without a gradient (see LmaxZeroIsAConstant). The lengths
// come with the normalised vectors' harmonics only.
std::vector<Options> every_option() {
  std::vector<Options> all;
  for (int lmax = 1; lmax <= kLargestLmax; ++lmax)
    for (bool normalize : {true, false})
      for (ShNormalization n : {ShNormalization::component, ShNormalization::norm, ShNormalization::integral})
        for (Output output : {Output::harmonics, Output::lengths, Output::both})
          if (normalize || output == Output::harmonics) all.push_back({lmax, normalize, n, output});
  return all;
}

at::Tensor evaluate(const Options& o, const at::Tensor& vectors) {
  if (o.output == Output::harmonics) return kernels::spherical_harmonics(o.lmax, vectors, o.normalize, o.normalization);
  const LengthsAndHarmonics edge = lengths_and_spherical_harmonics(o.lmax, vectors, o.normalization);
  if (o.output == Output::lengths) return edge.lengths;
  return at::cat({edge.lengths.unsqueeze(-1), edge.harmonics}, -1);
}

at::Tensor evaluate_composite(const Options& o, const at::Tensor& vectors) {
  const at::Tensor harmonics = e3nn::spherical_harmonics(o.lmax, vectors, o.normalize, o.normalization);
  if (o.output == Output::harmonics) return harmonics;
  if (o.output == Output::lengths) return e3nn::vector_lengths(vectors);
  return at::cat({e3nn::vector_lengths(vectors).unsqueeze(-1), harmonics}, -1);
}

Derivatives derivatives(bool fused, const Options& o, const at::Tensor& vectors, at::ScalarType dtype,
                        bool second_order) {
  return one_input_derivatives([&](const at::Tensor& v) { return evaluate(o, v); }, fused, vectors, dtype,
                               second_order);
}

int64_t output_width(const Options& o) {
  const int64_t harmonics = (o.lmax + 1) * (o.lmax + 1);
  return o.output == Output::harmonics ? harmonics : o.output == Output::lengths ? 0 : harmonics + 1;
}

// Vectors [2, rows, 3] of lengths around 0.5 to 3 (edge vectors in Å).
at::Tensor random_vectors(int64_t rows, uint64_t seed) {
  at::manual_seed(seed);
  return at::randn({2, rows, 3}, at::kDouble) * 1.5;
}

TEST(SphericalHarmonicsKernel, MatchesTheCompositePathAndItsGradient) {
  const at::Tensor vectors = random_vectors(37, 3);
  for (const Options& o : every_option()) {
    SCOPED_TRACE(o.name());
    const KernelCounters before = spherical_harmonics_counters();
    const Derivatives fused = derivatives(true, o, vectors, at::kDouble, false);
    const KernelCounters after = spherical_harmonics_counters();
    EXPECT_EQ(after.forward_calls - before.forward_calls, 1);
    EXPECT_EQ(after.backward_calls - before.backward_calls, 1);
    const Derivatives composite = derivatives(false, o, vectors, at::kDouble, false);
    EXPECT_EQ(spherical_harmonics_counters().forward_calls, after.forward_calls);  // switched off: composite
    if (o.output == Output::lengths) {
      ASSERT_EQ(fused.out.sizes(), (std::vector<int64_t>{2, 37}));
    } else {
      ASSERT_EQ(fused.out.sizes(), (std::vector<int64_t>{2, 37, output_width(o)}));
    }
    EXPECT_LE(relative_error(fused.out, composite.out), 1e-12);
    EXPECT_LE(relative_error(fused.grad, composite.grad), 1e-12);
    EXPECT_LE(relative_error(evaluate(o, vectors), evaluate_composite(o, vectors)), 1e-12);
  }
}

// A zero vector (normalised by the floor 10⁻¹²: Y = Y(0), a finite gradient of order 10¹²; length
// 0 with gradient 0), one below the floor and one just above it, beside an ordinary one: each row as
// the composite path has it, nothing NaN. Rows are compared one by one, their gradients differing by 12 orders.
TEST(SphericalHarmonicsKernel, ZeroAndTinyVectorsAreThoseOfTheCompositePath) {
  const at::Tensor vectors =
      at::tensor({0.0, 0.0, 0.0, 3e-13, -4e-13, 1e-13, 2e-12, 1e-12, -3e-12, 0.4, -1.2, 0.7}, at::kDouble).view({4, 3});
  for (const Options& o : every_option()) {
    SCOPED_TRACE(o.name());
    const Derivatives fused = derivatives(true, o, vectors, at::kDouble, false);
    const Derivatives composite = derivatives(false, o, vectors, at::kDouble, false);
    EXPECT_TRUE(at::isfinite(fused.out).all().item<bool>());
    EXPECT_TRUE(at::isfinite(fused.grad).all().item<bool>());
    for (int64_t row = 0; row < vectors.size(0); ++row) {
      EXPECT_LE(relative_error(fused.out[row], composite.out[row]), 1e-12) << "row " << row;
      EXPECT_LE(relative_error(fused.grad[row], composite.grad[row]), 1e-12) << "row " << row;
    }
  }
}

TEST(SphericalHarmonicsKernel, SecondDerivativesGoThroughTheCompositePath) {
  const at::Tensor vectors = random_vectors(11, 5);
  for (const Options& o : every_option()) {
    if (o.lmax > 4) continue;                // the recursion's first step is enough; the rest is the same code
    if (o.lmax == 1 && !o.normalize) continue;  // √3·v: the gradient is a constant, no second derivative
    SCOPED_TRACE(o.name());
    const KernelCounters before = spherical_harmonics_counters();
    const Derivatives fused = derivatives(true, o, vectors, at::kDouble, true);
    EXPECT_EQ(spherical_harmonics_counters().composite_backward_calls - before.composite_backward_calls, 1);
    const Derivatives composite = derivatives(false, o, vectors, at::kDouble, true);
    EXPECT_LE(relative_error(fused.grad, composite.grad), 1e-12);
    EXPECT_LE(relative_error(fused.second, composite.second), 1e-12);
  }
}

TEST(SphericalHarmonicsKernel, Float32AgreesWithFloat64ToSinglePrecision) {
  const at::Tensor vectors = random_vectors(29, 7);
  for (const Options& o : every_option()) {
    SCOPED_TRACE(o.name());
    const int64_t calls = spherical_harmonics_counters().forward_calls;
    const Derivatives single = derivatives(true, o, vectors, at::kFloat, false);
    EXPECT_EQ(spherical_harmonics_counters().forward_calls - calls, 1);
    EXPECT_EQ(single.out.scalar_type(), at::kFloat);
    const Derivatives reference = derivatives(false, o, vectors, at::kDouble, false);
    EXPECT_LE(relative_error(single.out, reference.out), 1e-6);
    EXPECT_LE(relative_error(single.grad, reference.grad), 1e-6);
  }
}

TEST(SphericalHarmonicsKernel, ResultsDoNotDependOnTheThreadCount) {
  const at::Tensor vectors = random_vectors(3000, 2);  // 6000 vectors: three tasks
  const Options o{5, true, ShNormalization::component, Output::both};
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const Derivatives one = derivatives(true, o, vectors, at::kDouble, false);
  at::set_num_threads(2);
  const Derivatives two = derivatives(true, o, vectors, at::kDouble, false);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one.out, two.out));
  EXPECT_TRUE(at::equal(one.grad, two.grad));
}

// The backward's lanes in the baseline x86-64 entry point (two float64 vectors at a time) and in
// the widest one the CPU has (eight with AVX-512), over a row count no lane width divides (the
// last block filled up): the same gradients to rounding.
TEST(SphericalHarmonicsKernel, BaselineAndWideVectorCodeAgree) {
  const at::Tensor vectors = random_vectors(37, 9);
  for (const Options& o : every_option()) {
    SCOPED_TRACE(o.name());
    set_wide_vector_units_enabled(false);
    const Derivatives baseline = derivatives(true, o, vectors, at::kDouble, false);
    set_wide_vector_units_enabled(true);
    const Derivatives wide = derivatives(true, o, vectors, at::kDouble, false);
    EXPECT_LE(relative_error(wide.out, baseline.out), 1e-14);
    EXPECT_LE(relative_error(wide.grad, baseline.grad), 1e-14);
  }
}

// As in the composite path, Y^0 = 1 does not depend on the vectors: no kernel call, no gradient.
TEST(SphericalHarmonicsKernel, LmaxZeroIsAConstant) {
  const at::Tensor vectors = random_vectors(5, 1).requires_grad_();
  const int64_t calls = spherical_harmonics_counters().forward_calls;
  const at::Tensor out = kernels::spherical_harmonics(0, vectors, true, ShNormalization::integral);
  EXPECT_EQ(spherical_harmonics_counters().forward_calls, calls);
  EXPECT_FALSE(out.requires_grad());
  EXPECT_TRUE(at::equal(out, e3nn::spherical_harmonics(0, vectors, true, ShNormalization::integral)));
}

// KLAY_FUSED_KERNELS=0 in the environment runs the composite path (ctest runs this test once more
// with it set: kernels.SphericalHarmonicsKernel.SwitchedOffByTheEnvironment).
TEST(SphericalHarmonicsKernel, FollowsTheEnvironmentSwitch) {
  const char* variable = std::getenv("KLAY_FUSED_KERNELS");
  const bool switched_off = variable && std::string(variable) == "0";
  EXPECT_EQ(fused_kernels_enabled(), !switched_off);
  const at::Tensor vectors = random_vectors(7, 4).requires_grad_();
  const KernelCounters before = spherical_harmonics_counters();
  const at::Tensor out = kernels::spherical_harmonics(2, vectors, true, ShNormalization::norm);
  out.sum().backward();
  const KernelCounters after = spherical_harmonics_counters();
  EXPECT_EQ(after.forward_calls - before.forward_calls, switched_off ? 0 : 1);
  EXPECT_EQ(after.backward_calls - before.backward_calls, switched_off ? 0 : 1);
  EXPECT_LE(relative_error(out.detach(), e3nn::spherical_harmonics(2, vectors.detach(), true, ShNormalization::norm)),
            1e-12);
}

TEST(SphericalHarmonicsKernel, NoVectorsGiveNoRows) {
  const at::Tensor out = spherical_harmonics(2, at::zeros({0, 3}, at::kDouble), true);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{0, 9}));
}

TEST(SphericalHarmonicsKernel, VectorsThatAreNotThreeWideAreErrors) {
  EXPECT_ANY_THROW(spherical_harmonics(2, at::randn({4, 2}, at::kDouble), true));
}

}  // namespace
}  // namespace klay::kernels
