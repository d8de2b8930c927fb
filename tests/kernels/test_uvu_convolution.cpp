// The fused convolution kernel against the composite ATen path (tp on gathered sender features,
// then scatter_sum): values, first derivatives (the MD forces) and second derivatives (training's
// force loss), in float64 to rounding, float32 to its precision, any thread count, and every
// tensor product the convolution layers build.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "e3nn/irreps.hpp"
#include "e3nn/tensor_product.hpp"
#include "kernels/relative_error.hpp"
#include "kernels/uvu_convolution.hpp"
#include "kernels/vector_units.hpp"
#include "layers/convolution_tensor_product.hpp"

namespace klay::kernels {
namespace {

using e3nn::Irreps;

struct Graph {
  at::Tensor x, sh, w, sender, receiver, probe;
  int64_t num_receivers;
};

Graph random_graph(const e3nn::TensorProductImpl& tp, int64_t num_senders, int64_t num_receivers, int64_t num_edges,
                   uint64_t seed) {
  at::manual_seed(seed);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  return Graph{at::randn({num_senders, tp.irreps_in1().dim()}, f64),
               at::randn({num_edges, tp.irreps_in2().dim()}, f64),
               at::randn({num_edges, tp.weight_numel()}, f64),
               at::randint(0, num_senders, {num_edges}, at::kLong),
               at::randint(0, num_receivers, {num_edges}, at::kLong),
               at::randn({num_receivers, tp.irreps_out().dim()}, f64),
               num_receivers};
}

// The convolution, d(probe·out)/d(x, sh, w), and the derivative with respect to w of a second
// probe of the (x, sh) gradients: what the force loss of a fit differentiates.
struct Derivatives {
  at::Tensor out, grad_x, grad_sh, grad_w, second_w;
};

Derivatives derivatives(bool fused, const e3nn::TensorProductImpl& tp, const Graph& g, at::ScalarType dtype,
                        bool second_order, double scale = 1.0) {
  set_fused_kernels_enabled(fused);
  const at::Tensor x = g.x.to(dtype).requires_grad_(), sh = g.sh.to(dtype).requires_grad_(),
                   w = g.w.to(dtype).requires_grad_();
  const at::Tensor out = convolution_scatter(tp, x, sh, w, g.sender, g.receiver, g.num_receivers, scale);
  const at::Tensor loss = (out * g.probe.to(dtype)).sum();
  const auto first = torch::autograd::grad({loss}, {x, sh, w}, {}, /*retain_graph=*/true, second_order);
  Derivatives d{out.detach(), first[0].detach(), first[1].detach(), first[2].detach(), {}};
  if (second_order) {
    const at::Tensor probe_x = at::ones_like(first[0]), probe_sh = at::cos(at::arange(first[1].numel(), first[1].options()))
                                                                     .view_as(first[1]);
    const at::Tensor second = (first[0] * probe_x).sum() + (first[1] * probe_sh).sum();
    d.second_w = torch::autograd::grad({second}, {w})[0].detach();
  }
  set_fused_kernels_enabled(true);
  return d;
}

// The convolution and its three first derivatives agree within `tolerance` (relative).
void expect_close(const Derivatives& a, const Derivatives& reference, double tolerance) {
  EXPECT_LE(relative_error(a.out, reference.out), tolerance);
  EXPECT_LE(relative_error(a.grad_x, reference.grad_x), tolerance);
  EXPECT_LE(relative_error(a.grad_sh, reference.grad_sh), tolerance);
  EXPECT_LE(relative_error(a.grad_w, reference.grad_w), tolerance);
}

e3nn::TensorProduct convolution(const std::string& node_irreps, int sh_lmax, const std::string& target) {
  return convolution_tensor_product(Irreps(node_irreps), Irreps::spherical_harmonics(sh_lmax), Irreps(target));
}

// The tensor products of the convolution layers: NequIP after a first layer (mixed blocks, l = 2
// inputs in the order a ConvNetLayer outputs them), MACE's (scalars into sh lmax 3), several
// blocks of one irrep, the single-path case, and every multiplicity the kernels compile a width
// for (2, 3 and 4 as in the conformance layers, 8 to 64).
std::vector<e3nn::TensorProduct> layer_tensor_products() {
  return {convolution("4x0e+3x2e+5x1o", 2, "1x0e+1x1o+1x2e+1x1e+1x2o+1x0o"),
          convolution("2x0e+2x1o+2x2e", 2, "1x0e+1x1o+1x2e"),
          convolution("3x0e+3x1o+3x1e", 1, "1x0e+1x1o+1x1e+1x0o"),
          convolution("4x0e+4x0o+4x1e+4x1o", 1, "1x0e+1x0o+1x1e+1x1o"),
          convolution("64x0e+64x1o", 1, "1x0e+1x1o"),
          convolution("6x0e", 3, "1x0e+1x1o+1x2e+1x3o"),
          convolution("2x0e+3x1o+2x0e+1x1o", 1, "1x0e+1x1o+1x1e"),
          convolution("16x0e", 0, "1x0e"),
          convolution("8x0e+8x2e+8x1o", 2, "1x0e+1x1o+1x2e+1x1e+1x2o"),
          convolution("32x0e+32x1o", 1, "1x0e+1x1o+1x1e"),
          convolution("3x1o+2x3o+4x2e", 3, "1x0e+1x1e+1x2e+1x3e+1x4e+1x0o+1x1o+1x2o+1x3o")};
}

TEST(UvuConvolution, MatchesTheCompositePathAndItsGradients) {
  for (const e3nn::TensorProduct& tp : layer_tensor_products()) {
    SCOPED_TRACE(tp->irreps_in1().to_string() + " x " + tp->irreps_in2().to_string());
    ASSERT_TRUE(fused_kernel_supports(*tp));
    const Graph g = random_graph(*tp, 23, 19, 150, 7);
    const int64_t calls = kernel_counters().forward_calls, backwards = kernel_counters().backward_calls;
    // The scale is the layers' 1/sqrt(average number of neighbours).
    const Derivatives fused = derivatives(true, *tp, g, at::kDouble, false, 1 / std::sqrt(3.0));
    EXPECT_EQ(kernel_counters().forward_calls, calls + 1);
    EXPECT_EQ(kernel_counters().backward_calls, backwards + 1);
    expect_close(fused, derivatives(false, *tp, g, at::kDouble, false, 1 / std::sqrt(3.0)), 1e-13);
  }
}

TEST(UvuConvolution, SecondDerivativesGoThroughTheCompositePathExactly) {
  for (const e3nn::TensorProduct& tp : layer_tensor_products()) {
    SCOPED_TRACE(tp->irreps_in1().to_string());
    const Graph g = random_graph(*tp, 11, 11, 60, 3);
    const int64_t composite_calls = kernel_counters().composite_backward_calls;
    const Derivatives fused = derivatives(true, *tp, g, at::kDouble, true, 0.25);
    EXPECT_EQ(kernel_counters().composite_backward_calls, composite_calls + 1);
    const Derivatives composite = derivatives(false, *tp, g, at::kDouble, true, 0.25);
    EXPECT_LE(relative_error(fused.grad_x, composite.grad_x), 1e-13);
    EXPECT_LE(relative_error(fused.grad_sh, composite.grad_sh), 1e-13);
    EXPECT_LE(relative_error(fused.grad_w, composite.grad_w), 1e-13);
    EXPECT_LE(relative_error(fused.second_w, composite.second_w), 1e-12);
  }
}

// As in a model with AutogradForces: node features, edge attributes and weights all computed from
// positions, forces taken with create_graph, and the node features depending on the edge
// attributes too (in a second convolution they come out of the first one, which read the same
// spherical harmonics).
at::Tensor forces_with_graph(bool fused, const e3nn::TensorProductImpl& tp, const Graph& g) {
  set_fused_kernels_enabled(fused);
  const at::Tensor pos = at::cos(at::arange(g.x.size(0) * 3, at::kDouble)).view({-1, 3}).requires_grad_();
  const at::Tensor edge = pos.index_select(0, g.receiver.clamp_max(g.x.size(0) - 1)) - pos.index_select(0, g.sender);
  const at::Tensor sh = g.sh * edge.sum(1, true);
  const at::Tensor w = g.w * edge.norm(2, 1, true);
  const at::Tensor x = g.x * pos.sum(1, true).tanh() * sh.mean();
  const at::Tensor first = convolution_scatter(tp, x, sh, w, g.sender, g.receiver, g.num_receivers);
  const at::Tensor energy = (first * g.probe).sum();
  const at::Tensor forces = -torch::autograd::grad({energy}, {pos}, {}, true, true)[0];
  set_fused_kernels_enabled(true);
  return forces.detach();
}

TEST(UvuConvolution, ForcesWithCreateGraphMatchTheCompositePath) {
  for (const e3nn::TensorProduct& tp : layer_tensor_products()) {
    SCOPED_TRACE(tp->irreps_in1().to_string());
    const Graph g = random_graph(*tp, 12, 12, 70, 13);
    EXPECT_LE(relative_error(forces_with_graph(true, *tp, g), forces_with_graph(false, *tp, g)), 1e-13);
  }
}

TEST(UvuConvolution, Float32AgreesWithFloat64ToSinglePrecision) {
  const std::vector<e3nn::TensorProduct> tps = layer_tensor_products();
  std::vector<e3nn::TensorProduct> singles = layer_tensor_products();
  for (size_t k = 0; k < tps.size(); ++k) {
    singles[k]->to(at::kFloat);
    const Graph g = random_graph(*tps[k], 40, 40, 400, 5);
    const Derivatives single = derivatives(true, *singles[k], g, at::kFloat, false);
    const Derivatives reference = derivatives(false, *tps[k], g, at::kDouble, false);
    EXPECT_EQ(single.out.scalar_type(), at::kFloat);
    expect_close(single, reference, 2e-6);
  }
}

// Messages and edge gradients are computed per receiver and per edge whatever the threads; the
// node-feature gradient is summed per thread and then over threads, so it agrees to rounding.
TEST(UvuConvolution, ResultsDoNotDependOnTheThreadCount) {
  const std::vector<e3nn::TensorProduct> tps = layer_tensor_products();
  // The general loop, widths 3 and 4, and a width of whole AVX2 vectors.
  for (const e3nn::TensorProduct& tp : {tps[0], tps[2], tps[3], tps[8]}) {
    SCOPED_TRACE(tp->irreps_in1().to_string());
    const Graph g = random_graph(*tp, 300, 300, 3000, 11);
    const int threads = at::get_num_threads();
    at::set_num_threads(1);
    const Derivatives one = derivatives(true, *tp, g, at::kDouble, false);
    at::set_num_threads(2);
    const Derivatives two = derivatives(true, *tp, g, at::kDouble, false);
    at::set_num_threads(threads);
    EXPECT_TRUE(at::equal(one.out, two.out));
    EXPECT_LE(relative_error(one.grad_x, two.grad_x), 1e-14);
    EXPECT_TRUE(at::equal(one.grad_sh, two.grad_sh));
    EXPECT_TRUE(at::equal(one.grad_w, two.grad_w));
  }
}

// Each thread sums the feature gradient over the senders its receivers' edges reach only: here
// the first receivers' senders lie in [40, 60), the last ones' in [100, 120), and the other rows
// of the gradient are zero, on one thread or two.
TEST(UvuConvolution, EachThreadsSendersAreTheOnlyRowsItSumsInto) {
  const e3nn::TensorProduct tp = layer_tensor_products()[1];
  Graph g = random_graph(*tp, 150, 64, 600, 29);
  g.receiver = std::get<0>(at::sort(g.receiver));
  g.sender = at::where(g.receiver < 32, 40 + g.sender % 20, 100 + g.sender % 20);
  const int threads = at::get_num_threads();
  for (int n : {1, 2}) {
    SCOPED_TRACE(std::to_string(n) + " threads");
    at::set_num_threads(n);
    const Derivatives fused = derivatives(true, *tp, g, at::kDouble, false);
    expect_close(fused, derivatives(false, *tp, g, at::kDouble, false), 1e-13);
    const at::Tensor reached = at::zeros({150}, at::kBool).index_fill_(0, g.sender, true);
    EXPECT_TRUE(at::equal(fused.grad_x.index({~reached}), at::zeros({150 - 40, fused.grad_x.size(1)}, at::kDouble)));
  }
  at::set_num_threads(threads);
}

TEST(UvuConvolution, BaselineAndWideVectorCodeAgree) {
  for (const e3nn::TensorProduct& tp : layer_tensor_products()) {
    SCOPED_TRACE(tp->irreps_in1().to_string());
    const Graph g = random_graph(*tp, 30, 30, 200, 17);
    set_wide_vector_units_enabled(false);
    const Derivatives baseline = derivatives(true, *tp, g, at::kDouble, false);
    set_wide_vector_units_enabled(true);
    expect_close(baseline, derivatives(true, *tp, g, at::kDouble, false), 1e-14);
  }
}

// Plans are kept per product and scale; each must still describe the product it is used with.
TEST(UvuConvolution, AProductAtTheAddressOfAFreedOneGetsItsOwnPlan) {
  // Two products alike but for their path weights, each made right after the other is freed, so
  // that the allocator may hand the second the first's block: the first's plan would be wrong.
  const e3nn::TensorProduct prototype = convolution("4x0e+4x1o", 1, "1x0e+1x1o");
  const auto product = [&](double path_weight) {
    std::vector<e3nn::TPInstruction> instructions = prototype->instructions();
    for (e3nn::TPInstruction& ins : instructions) ins.path_weight = path_weight;
    return e3nn::TensorProduct(prototype->irreps_in1(), prototype->irreps_in2(), prototype->irreps_out(),
                               instructions, /*internal_weights=*/false);
  };
  const Graph g = random_graph(*prototype, 9, 9, 40, 21);
  e3nn::TensorProduct tp{nullptr};
  for (double path_weight : {1.0, 4.0, 1.0, 4.0}) {
    tp = nullptr;
    tp = product(path_weight);
    expect_close(derivatives(true, *tp, g, at::kDouble, false), derivatives(false, *tp, g, at::kDouble, false),
                 1e-13);
  }
}

TEST(UvuConvolution, OneProductWithSeveralScalesAndNewWigner3jValues) {
  const e3nn::TensorProduct tp = layer_tensor_products()[3];
  const Graph g = random_graph(*tp, 13, 13, 60, 23);
  for (double scale : {1.0, 0.5, 1.0, 0.25})
    expect_close(derivatives(true, *tp, g, at::kDouble, false, scale),
                 derivatives(false, *tp, g, at::kDouble, false, scale), 1e-13);
  // Values loaded in place (as a state_dict is) are what the next call uses.
  {
    at::NoGradGuard no_grad;
    for (const auto& path : tp->paths()) path.w3j.mul_(1.5);
  }
  const Derivatives fused = derivatives(true, *tp, g, at::kDouble, false, 0.5);
  expect_close(fused, derivatives(false, *tp, g, at::kDouble, false, 0.5), 1e-13);
  EXPECT_GT(relative_error(fused.out, derivatives(true, *layer_tensor_products()[3], g, at::kDouble, false, 0.5).out),
            0.1);
}

TEST(UvuConvolution, NoEdgesGiveZeroMessagesAndGradients) {
  const e3nn::TensorProduct tp = layer_tensor_products()[0];
  const Graph g = random_graph(*tp, 5, 4, 0, 1);
  const Derivatives d = derivatives(true, *tp, g, at::kDouble, false);
  EXPECT_EQ(d.out.sizes(), (std::vector<int64_t>{4, tp->irreps_out().dim()}));
  EXPECT_EQ(d.out.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(d.grad_x.abs().sum().item<double>(), 0.0);
}

TEST(UvuConvolution, OtherTensorProductsTakeTheCompositePath) {
  // uvw with external weights (E3Attention's key/value products) is not a uvu convolution.
  const e3nn::TensorProduct tp = e3nn::fully_connected_tensor_product(Irreps("3x0e+2x1o"), Irreps::spherical_harmonics(1),
                                                                      Irreps("2x0e+2x1o"), /*internal_weights=*/false);
  EXPECT_FALSE(fused_kernel_supports(*tp));
  const Graph g = random_graph(*tp, 6, 6, 20, 2);
  const int64_t calls = kernel_counters().forward_calls;
  const Derivatives d = derivatives(true, *tp, g, at::kDouble, false);
  EXPECT_EQ(kernel_counters().forward_calls, calls);
  EXPECT_LE(relative_error(d.out, derivatives(false, *tp, g, at::kDouble, false).out), 0.0);
}

TEST(UvuConvolution, EdgesOutsideTheNodesAreErrorsNamingTheEdge) {
  const e3nn::TensorProduct tp = layer_tensor_products()[1];
  Graph g = random_graph(*tp, 5, 5, 8, 4);
  g.receiver[6] = 5;
  try {
    convolution_scatter(*tp, g.x, g.sh, g.w, g.sender, g.receiver, g.num_receivers);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("edge 6 has receiver 5, outside 0..4"), std::string::npos) << e.what();
  }
  g.receiver[6] = 0;
  g.sender[2] = -1;
  try {
    convolution_scatter(*tp, g.x, g.sh, g.w, g.sender, g.receiver, g.num_receivers);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("edge 2 has sender -1, outside 0..4"), std::string::npos) << e.what();
  }
  EXPECT_THROW(convolution_scatter(*tp, g.x, g.sh, g.w.narrow(1, 0, 1), g.sender, g.receiver, 5), Error);
}

}  // namespace
}  // namespace klay::kernels
