// The radial convolution (radial_convolution_scatter: the radial MLP evaluated inside the fused
// convolution kernel, a block of edges at a time) against the composite path (the net, the edge
// scale and the convolution from ATen operators): values and gradients in float64 to rounding,
// blocks of every shape (receivers with no edges, with more edges than a block holds), any thread
// count, float32, and training's derivatives (the net's weights, second order) through the
// composite path.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <string>
#include <vector>

#include "e3nn/activations.hpp"
#include "e3nn/irreps.hpp"
#include "e3nn/tensor_product.hpp"
#include "kernels/relative_error.hpp"
#include "kernels/uvu_convolution.hpp"
#include "layers/convolution_tensor_product.hpp"

namespace klay::kernels {
namespace {

using e3nn::Irreps;

e3nn::TensorProduct convolution(const std::string& node_irreps, int sh_lmax, const std::string& target) {
  return convolution_tensor_product(Irreps(node_irreps), Irreps::spherical_harmonics(sh_lmax), Irreps(target));
}

struct Graph {
  at::Tensor embeddings, x, sh, edge_scale, sender, receiver, probe;
  int64_t num_receivers;
};

// Edges with random ends; `crowded` receivers take a share of them each (more than a block
// holds) and, with many receivers, some receive none.
Graph random_graph(const e3nn::TensorProductImpl& tp, int64_t num_embeddings, int64_t num_nodes, int64_t num_edges,
                   uint64_t seed) {
  at::manual_seed(seed);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  return Graph{at::rand({num_edges, num_embeddings}, f64),
               at::randn({num_nodes, tp.irreps_in1().dim()}, f64),
               at::randn({num_edges, tp.irreps_in2().dim()}, f64),
               at::rand({num_edges, 1}, f64),
               at::randint(0, num_nodes, {num_edges}, at::kLong),
               at::randint(0, num_nodes, {num_edges}, at::kLong),
               at::randn({num_nodes, tp.irreps_out().dim()}, f64),
               num_nodes};
}

struct Derivatives {
  at::Tensor out, grad_embeddings, grad_x, grad_sh, grad_scale;
  std::vector<at::Tensor> grad_weights;  // where asked for
  at::Tensor second;                     // d/d(last weight) of a probe of the first derivatives
};

struct Call {
  bool fused = true, with_scale = true, weight_gradients = false, second_order = false;
  at::ScalarType dtype = at::kDouble;
  at::Tensor columns;  // of the net's last layer
};

Derivatives derivatives(const e3nn::TensorProductImpl& tp, const e3nn::FullyConnectedNetImpl& fc, const Graph& g,
                        const Call& call) {
  set_fused_kernels_enabled(call.fused);
  const auto input = [&](const at::Tensor& t) { return t.to(call.dtype).requires_grad_(); };
  const at::Tensor embeddings = input(g.embeddings), x = input(g.x), sh = input(g.sh);
  const at::Tensor scale = call.with_scale ? input(g.edge_scale) : at::Tensor();
  std::vector<at::Tensor> weights = fc.weights();
  for (at::Tensor& w : weights) w.requires_grad_(call.weight_gradients || call.second_order);
  const at::Tensor out = radial_convolution_scatter(tp, fc, embeddings, call.columns, scale, x, sh, g.sender,
                                                    g.receiver, g.num_receivers, 0.5);
  std::vector<at::Tensor> wrt{embeddings, x, sh};
  if (scale.defined()) wrt.push_back(scale);
  if (call.weight_gradients) wrt.insert(wrt.end(), weights.begin(), weights.end());
  const at::Tensor loss = (out * g.probe.to(call.dtype)).sum();
  const auto first = torch::autograd::grad({loss}, wrt, {}, /*retain_graph=*/true, call.second_order);
  Derivatives d{out.detach(), first[0].detach(), first[1].detach(), first[2].detach(), {}, {}, {}};
  size_t next = 3;
  if (scale.defined()) d.grad_scale = first[next++].detach();
  if (call.weight_gradients)
    while (next < first.size()) d.grad_weights.push_back(first[next++].detach());
  if (call.second_order) {
    const at::Tensor probe = (first[0] * at::cos(first[0].detach())).sum() + first[1].sum() + (first[2] * first[2]).sum();
    d.second = torch::autograd::grad({probe}, {weights.back()})[0].detach();
  }
  for (at::Tensor& w : weights) w.requires_grad_(true);
  set_fused_kernels_enabled(true);
  return d;
}

void expect_close(const Derivatives& a, const Derivatives& reference, double tolerance) {
  EXPECT_LE(relative_error(a.out, reference.out), tolerance);
  EXPECT_LE(relative_error(a.grad_embeddings, reference.grad_embeddings), tolerance);
  EXPECT_LE(relative_error(a.grad_x, reference.grad_x), tolerance);
  EXPECT_LE(relative_error(a.grad_sh, reference.grad_sh), tolerance);
  ASSERT_EQ(a.grad_scale.defined(), reference.grad_scale.defined());
  if (a.grad_scale.defined()) {
    EXPECT_LE(relative_error(a.grad_scale, reference.grad_scale), tolerance);
  }
  ASSERT_EQ(a.grad_weights.size(), reference.grad_weights.size());
  for (size_t k = 0; k < a.grad_weights.size(); ++k)
    EXPECT_LE(relative_error(a.grad_weights[k], reference.grad_weights[k]), tolerance) << "layer " << k;
}

// NequIP's products (mixed blocks, both parities), MACE's (scalars into sh lmax 3), a general
// width and a vector-wide one; nets of one to three layers with the activations the layers use.
struct Case {
  e3nn::TensorProduct tp;
  std::vector<int64_t> hidden;
  std::string activation;
};
std::vector<Case> cases() {
  return {{convolution("4x0e+3x2e+5x1o", 2, "1x0e+1x1o+1x2e+1x1e+1x2o+1x0o"), {16, 16}, "ssp"},
          {convolution("6x0e", 3, "1x0e+1x1o+1x2e+1x3o"), {12, 12, 12}, "silu"},
          {convolution("3x0e+3x1o+3x1e", 1, "1x0e+1x1o+1x1e+1x0o"), {}, "silu"},
          {convolution("8x0e+8x2e+8x1o", 2, "1x0e+1x1o+1x2e+1x1e+1x2o"), {32}, "tanh"}};
}

e3nn::FullyConnectedNet net(const Case& c, int64_t num_embeddings) {
  std::vector<int64_t> sizes{num_embeddings};
  sizes.insert(sizes.end(), c.hidden.begin(), c.hidden.end());
  sizes.push_back(c.tp->weight_numel());
  at::manual_seed(3);
  return e3nn::FullyConnectedNet(sizes, c.activation);
}

TEST(RadialConvolution, MatchesTheCompositePathAndItsGradients) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.tp->irreps_in1().to_string() + " " + c.activation);
    const e3nn::FullyConnectedNet fc = net(c, 8);
    // ~8 edges per receiver; then 3 receivers of ~150 edges each, more than a block holds, and
    // 400 receivers of whom most receive none.
    for (const Graph& g : {random_graph(*c.tp, 8, 19, 150, 7), random_graph(*c.tp, 8, 3, 450, 8),
                           random_graph(*c.tp, 8, 400, 90, 9)})
      for (bool with_scale : {false, true}) {
        const KernelCounters before = radial_convolution_counters();
        Call call;
        call.with_scale = with_scale;
        const Derivatives fused = derivatives(*c.tp, *fc, g, call);
        EXPECT_EQ(radial_convolution_counters().forward_calls, before.forward_calls + 1);
        EXPECT_EQ(radial_convolution_counters().backward_calls, before.backward_calls + 1);
        call.fused = false;
        expect_close(fused, derivatives(*c.tp, *fc, g, call), 1e-13);
      }
  }
}

// A restricted convolution (only some outputs wanted) reads a subset of the net's last columns.
TEST(RadialConvolution, SelectedColumnsOfTheLastLayer) {
  const Case c = cases()[0];
  const e3nn::FullyConnectedNet fc = [&] {
    std::vector<int64_t> sizes{8, 16, c.tp->weight_numel() + 7};
    at::manual_seed(4);
    return e3nn::FullyConnectedNet(sizes, "ssp");
  }();
  const Graph g = random_graph(*c.tp, 8, 30, 200, 12);
  Call call;
  call.columns = at::randperm(c.tp->weight_numel() + 7, at::kLong).narrow(0, 0, c.tp->weight_numel());
  const Derivatives fused = derivatives(*c.tp, *fc, g, call);
  call.fused = false;
  expect_close(fused, derivatives(*c.tp, *fc, g, call), 1e-13);
}

TEST(RadialConvolution, WeightGradientsAndSecondDerivativesGoThroughTheCompositePath) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.tp->irreps_in1().to_string());
    const e3nn::FullyConnectedNet fc = net(c, 6);
    const Graph g = random_graph(*c.tp, 6, 15, 120, 5);
    for (bool second_order : {false, true}) {
      Call call;
      call.weight_gradients = true;
      call.second_order = second_order;
      const KernelCounters before = radial_convolution_counters();
      const Derivatives fused = derivatives(*c.tp, *fc, g, call);
      EXPECT_EQ(radial_convolution_counters().composite_backward_calls, before.composite_backward_calls + 1);
      call.fused = false;
      const Derivatives composite = derivatives(*c.tp, *fc, g, call);
      expect_close(fused, composite, 1e-13);
      if (second_order) {
        EXPECT_LE(relative_error(fused.second, composite.second), 1e-12);
      }
    }
  }
}

TEST(RadialConvolution, ResultsDoNotDependOnTheThreadCount) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.tp->irreps_in1().to_string());
    const e3nn::FullyConnectedNet fc = net(c, 8);
    const Graph g = random_graph(*c.tp, 8, 300, 3000, 11);
    const int threads = at::get_num_threads();
    at::set_num_threads(1);
    const Derivatives one = derivatives(*c.tp, *fc, g, Call{});
    at::set_num_threads(2);
    const Derivatives two = derivatives(*c.tp, *fc, g, Call{});
    at::set_num_threads(threads);
    EXPECT_TRUE(at::equal(one.out, two.out));
    EXPECT_TRUE(at::equal(one.grad_embeddings, two.grad_embeddings));
    EXPECT_TRUE(at::equal(one.grad_sh, two.grad_sh));
    EXPECT_TRUE(at::equal(one.grad_scale, two.grad_scale));
    EXPECT_LE(relative_error(one.grad_x, two.grad_x), 1e-14);
  }
}

TEST(RadialConvolution, Float32AgreesWithFloat64ToSinglePrecision) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.tp->irreps_in1().to_string());
    const e3nn::FullyConnectedNet fc = net(c, 8);
    const Graph g = random_graph(*c.tp, 8, 40, 400, 5);
    e3nn::TensorProduct single_tp = convolution_tensor_product(c.tp->irreps_in1(), c.tp->irreps_in2(),
                                                               c.tp->irreps_out());
    single_tp->to(at::kFloat);
    e3nn::FullyConnectedNet single_fc = net(c, 8);
    single_fc->to(at::kFloat);
    Call call;
    call.dtype = at::kFloat;
    const KernelCounters before = radial_convolution_counters();
    const Derivatives single = derivatives(*single_tp, *single_fc, g, call);
    EXPECT_EQ(radial_convolution_counters().backward_calls, before.backward_calls + 1);
    EXPECT_EQ(single.out.scalar_type(), at::kFloat);
    expect_close(single, derivatives(*c.tp, *fc, g, Call{}), 2e-5);
  }
}

TEST(RadialConvolution, NoEdgesGiveZeroMessagesAndGradients) {
  const Case c = cases()[0];
  const e3nn::FullyConnectedNet fc = net(c, 8);
  const Graph g = random_graph(*c.tp, 8, 4, 0, 1);
  const KernelCounters before = radial_convolution_counters();
  const Derivatives d = derivatives(*c.tp, *fc, g, Call{});
  EXPECT_EQ(radial_convolution_counters().backward_calls, before.backward_calls + 1);
  EXPECT_EQ(d.out.sizes(), (std::vector<int64_t>{4, c.tp->irreps_out().dim()}));
  EXPECT_EQ(d.out.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(d.grad_x.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(d.grad_embeddings.sizes(), (std::vector<int64_t>{0, 8}));
}

}  // namespace
}  // namespace klay::kernels
