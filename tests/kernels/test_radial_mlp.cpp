// The radial MLP kernel against the composite FullyConnectedNet it replaces (the module's own
// forward): values and the gradients with respect to the input and every weight for each named
// activation, 0, 1 and 2 hidden layers and restricted output columns in float64 to rounding;
// float32 to its precision; second derivatives (training's force loss) through the composite path.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <string>
#include <vector>

#include "base/error.hpp"
#include "e3nn/activations.hpp"
#include "kernels/radial_mlp.hpp"
#include "kernels/relative_error.hpp"
#include "kernels/uvu_convolution.hpp"
#include "kernels/vector_units.hpp"

namespace klay::kernels {
namespace {

const std::vector<std::string> kActivations{"silu", "ssp", "tanh", "abs", "sigmoid", "relu"};

e3nn::FullyConnectedNet make_net(const std::vector<int64_t>& sizes, const std::string& activation,
                                 at::ScalarType dtype = at::kDouble) {
  at::manual_seed(static_cast<uint64_t>(sizes.size()) * 31 + activation.size());
  return e3nn::FullyConnectedNet(sizes, activation, at::TensorOptions().dtype(dtype));
}

// Rows of growing size (0.1 to 12 standard deviations), so the pre-activations reach ssp's
// threshold (20) and saturate tanh and sigmoid as well as staying near zero.
at::Tensor make_input(int64_t rows, int64_t width, uint64_t seed) {
  at::manual_seed(seed);
  return at::randn({rows, width}, at::kDouble) * at::linspace(0.1, 12.0, rows, at::kDouble).unsqueeze(1);
}

struct NetDerivatives {
  at::Tensor out, grad_x;
  std::vector<at::Tensor> grad_weights;
  at::Tensor second_weight0;  // d/dW_0 of a probe of grad_x, with second_order
};

// The net (kernel or module), d(probe·out)/d(x, W_k), and with second_order the derivative with
// respect to the first weight of a probe of the x gradient (as the force loss differentiates).
NetDerivatives net_derivatives(bool kernel, e3nn::FullyConnectedNetImpl& net, const at::Tensor& input,
                               const at::Tensor& columns, bool second_order = false) {
  const at::ScalarType dtype = net.weights().front().scalar_type();
  const at::Tensor x = input.to(dtype).requires_grad_();
  const at::Tensor out = kernel ? radial_mlp(net, x, columns) : net.forward(x, columns);
  // The probes are computed in float64 (float32 would round the sines' arguments) and then cast.
  const at::Tensor probe = at::sin(at::arange(out.numel(), at::kDouble) * 0.7 + 0.3).to(dtype).view_as(out);
  std::vector<at::Tensor> wrt{x};
  for (const at::Tensor& w : net.weights()) wrt.push_back(w);
  const auto first = torch::autograd::grad({(out * probe).sum()}, wrt, {}, /*retain_graph=*/true, second_order);
  NetDerivatives d{out.detach(), first[0].detach(), {}, {}};
  for (size_t k = 1; k < first.size(); ++k) d.grad_weights.push_back(first[k].detach());
  if (second_order) {
    const at::Tensor probe_x = at::cos(at::arange(first[0].numel(), at::kDouble)).to(dtype).view_as(first[0]);
    d.second_weight0 = torch::autograd::grad({(first[0] * probe_x).sum()}, {net.weights().front()})[0].detach();
  }
  return d;
}

void expect_same(const NetDerivatives& kernel, const NetDerivatives& module, double tolerance) {
  EXPECT_LE(relative_error(kernel.out, module.out), tolerance);
  EXPECT_LE(relative_error(kernel.grad_x, module.grad_x), tolerance);
  ASSERT_EQ(kernel.grad_weights.size(), module.grad_weights.size());
  for (size_t k = 0; k < module.grad_weights.size(); ++k) {
    EXPECT_LE(relative_error(kernel.grad_weights[k], module.grad_weights[k]), tolerance) << "weight " << k;
  }
}

// The layer sizes with 0, 1 and 2 hidden layers.
const std::vector<std::vector<int64_t>> kSizes{{8, 20}, {8, 16, 20}, {8, 16, 12, 20}};

TEST(RadialMlp, MatchesTheCompositeNetAndItsGradientsForEveryActivation) {
  const at::Tensor columns = at::tensor(std::vector<int64_t>{7, 2, 19, 3, 11}, at::kLong);
  for (const std::string& activation : kActivations)
    for (const std::vector<int64_t>& sizes : kSizes)
      for (const at::Tensor& restricted : {at::Tensor(), columns}) {
        SCOPED_TRACE(activation + ", " + std::to_string(sizes.size() - 2) + " hidden layers" +
                     (restricted.defined() ? ", columns 7 2 19 3 11" : ""));
        e3nn::FullyConnectedNet net = make_net(sizes, activation);
        const at::Tensor x = make_input(53, sizes.front(), 3);
        const KernelCounters before = radial_mlp_counters();
        const NetDerivatives kernel = net_derivatives(true, *net, x, restricted);
        const KernelCounters after = radial_mlp_counters();
        EXPECT_EQ(after.forward_calls - before.forward_calls, 1);
        EXPECT_EQ(after.backward_calls - before.backward_calls, 1);
        const NetDerivatives module = net_derivatives(false, *net, x, restricted);
        EXPECT_EQ(kernel.out.size(1), restricted.defined() ? 5 : 20);
        expect_same(kernel, module, 1e-12);
      }
}

TEST(RadialMlp, KeepsTheInputsLeadingDimensions) {
  e3nn::FullyConnectedNet net = make_net({6, 10, 4}, "silu");
  const at::Tensor x = make_input(24, 6, 5).view({2, 3, 4, 6});
  const at::Tensor out = radial_mlp(*net, x);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 3, 4, 4}));
  EXPECT_LE(relative_error(out, net->forward(x)), 1e-12);
}

TEST(RadialMlp, SecondDerivativesGoThroughTheCompositeNet) {
  for (const std::string& activation : kActivations) {
    SCOPED_TRACE(activation);
    e3nn::FullyConnectedNet net = make_net({8, 16, 12, 20}, activation);
    const at::Tensor x = make_input(29, 8, 7);
    const at::Tensor columns = at::tensor(std::vector<int64_t>{4, 0, 13}, at::kLong);
    const KernelCounters before = radial_mlp_counters();
    const NetDerivatives kernel = net_derivatives(true, *net, x, columns, /*second_order=*/true);
    const KernelCounters after = radial_mlp_counters();
    const NetDerivatives module = net_derivatives(false, *net, x, columns, /*second_order=*/true);
    EXPECT_EQ(after.forward_calls - before.forward_calls, 1);
    EXPECT_EQ(after.composite_backward_calls - before.composite_backward_calls, 1);
    EXPECT_EQ(after.backward_calls, before.backward_calls);
    expect_same(kernel, module, 1e-12);
    EXPECT_LE(relative_error(kernel.second_weight0, module.second_weight0), 1e-12);
  }
}

// MD: the weights need no gradient, only the input does; inference: nothing does.
TEST(RadialMlp, GradientOfTheInputAloneAndNoGradient) {
  e3nn::FullyConnectedNet net = make_net({8, 64, 64, 30}, "silu");
  for (at::Tensor& w : net->parameters()) w.requires_grad_(false);
  const at::Tensor x = make_input(41, 8, 9).requires_grad_();
  const KernelCounters before = radial_mlp_counters();
  const at::Tensor out = radial_mlp(*net, x);
  const at::Tensor probe = at::rand_like(out);
  const at::Tensor grad_x = torch::autograd::grad({(out * probe).sum()}, {x})[0];
  EXPECT_EQ(radial_mlp_counters().backward_calls - before.backward_calls, 1);
  const at::Tensor module_out = net->forward(x);
  const at::Tensor module_grad_x = torch::autograd::grad({(module_out * probe).sum()}, {x})[0];
  EXPECT_LE(relative_error(out, module_out), 1e-12);
  EXPECT_LE(relative_error(grad_x, module_grad_x), 1e-12);

  const KernelCounters inference_before = radial_mlp_counters();
  at::NoGradGuard no_grad;
  const at::Tensor inference = radial_mlp(*net, x);
  EXPECT_EQ(radial_mlp_counters().forward_calls - inference_before.forward_calls, 1);
  EXPECT_FALSE(inference.requires_grad());
  EXPECT_LE(relative_error(inference, module_out), 1e-12);
}

// Without weight gradients the layers run a block of rows at a time through every layer (on the
// register tiles); with the wide vector units off, layer by layer. Both against the module, for
// row counts around the block size, on one and two threads.
TEST(RadialMlp, RowBlocksMatchTheCompositeNetForAnyRowsAndThreads) {
  e3nn::FullyConnectedNet net = make_net({8, 32, 32, 24}, "silu");
  for (at::Tensor& w : net->parameters()) w.requires_grad_(false);
  const int threads = at::get_num_threads();
  for (const int64_t rows : {1, 64, 65, 300}) {
    const at::Tensor x = make_input(rows, 8, 5).requires_grad_();
    const at::Tensor module_out = net->forward(x);
    const at::Tensor probe = at::cos(at::arange(module_out.numel(), at::kDouble)).view_as(module_out);
    const at::Tensor module_grad_x = torch::autograd::grad({(module_out * probe).sum()}, {x})[0];
    for (const bool wide : {true, false})
      for (const int n : {1, 2}) {
        SCOPED_TRACE(std::to_string(rows) + " rows, wide units " + (wide ? "on, " : "off, ") + std::to_string(n) +
                     " threads");
        set_wide_vector_units_enabled(wide);
        at::set_num_threads(n);
        const at::Tensor out = radial_mlp(*net, x);
        const at::Tensor grad_x = torch::autograd::grad({(out * probe).sum()}, {x})[0];
        EXPECT_LE(relative_error(out, module_out), 1e-12);
        EXPECT_LE(relative_error(grad_x, module_grad_x), 1e-12);
      }
  }
  set_wide_vector_units_enabled(true);
  at::set_num_threads(threads);
}

// An input whose rows are not contiguous (a transpose): the forward runs layer by layer, and the
// input's gradient must still come out right, whatever layout the backward writes it in.
TEST(RadialMlp, TransposedInputGetsItsGradient) {
  e3nn::FullyConnectedNet net = make_net({8, 32, 32, 24}, "silu");
  for (at::Tensor& w : net->parameters()) w.requires_grad_(false);
  const at::Tensor base = make_input(8, 300, 11).requires_grad_();
  const at::Tensor x = base.t();  // [300, 8], strides (1, 300)
  const at::Tensor module_out = net->forward(x);
  const at::Tensor probe = at::cos(at::arange(module_out.numel(), at::kDouble)).view_as(module_out);
  const at::Tensor module_grad = torch::autograd::grad({(module_out * probe).sum()}, {base})[0];
  const at::Tensor out = radial_mlp(*net, x);
  const at::Tensor grad = torch::autograd::grad({(out * probe).sum()}, {base})[0];
  EXPECT_LE(relative_error(out, module_out), 1e-12);
  EXPECT_LE(relative_error(grad, module_grad), 1e-12);
}

TEST(RadialMlp, InferenceMatchesTheCompositeNetForEveryActivation) {
  for (const std::string& activation : kActivations) {
    SCOPED_TRACE(activation);
    e3nn::FullyConnectedNet net = make_net({8, 16, 12, 20}, activation);
    const at::Tensor x = make_input(53, 8, 21);
    at::NoGradGuard no_grad;
    const KernelCounters before = radial_mlp_counters();
    const at::Tensor out = radial_mlp(*net, x);
    EXPECT_EQ(radial_mlp_counters().forward_calls - before.forward_calls, 1);
    EXPECT_LE(relative_error(out, net->forward(x)), 1e-12);
  }
}

TEST(RadialMlp, SwitchedOffRunsTheCompositeNet) {
  e3nn::FullyConnectedNet net = make_net({8, 16, 20}, "ssp");
  const at::Tensor x = make_input(17, 8, 1);
  set_fused_kernels_enabled(false);
  const KernelCounters before = radial_mlp_counters();
  const NetDerivatives composite = net_derivatives(true, *net, x, {});
  const KernelCounters after = radial_mlp_counters();
  set_fused_kernels_enabled(true);
  EXPECT_EQ(after.forward_calls, before.forward_calls);
  EXPECT_EQ(after.backward_calls, before.backward_calls);
  expect_same(composite, net_derivatives(false, *net, x, {}), 0.0);
}

// float32 against the float64 module with the same weights (float32 ones, widened): 1e-5 is about
// 80 float32 ulps, room for the rounding of 64-term sums over three hidden layers and of the
// 61-row sums of the weight gradients, and far below any wrong derivative.
TEST(RadialMlp, Float32AgreesWithFloat64ToSinglePrecision) {
  for (const std::string& activation : kActivations) {
    SCOPED_TRACE(activation);
    e3nn::FullyConnectedNet reference = make_net({8, 64, 64, 64, 30}, activation, at::kDouble);
    e3nn::FullyConnectedNet single = make_net({8, 64, 64, 64, 30}, activation, at::kFloat);
    {
      at::NoGradGuard no_grad;
      for (size_t k = 0; k < reference->weights().size(); ++k) single->weights()[k].copy_(reference->weights()[k]);
    }
    const at::Tensor x = make_input(61, 8, 13);
    const NetDerivatives kernel = net_derivatives(true, *single, x, {});
    EXPECT_EQ(kernel.out.scalar_type(), at::kFloat);
    expect_same(kernel, net_derivatives(false, *reference, x, {}), 1e-5);
  }
}

TEST(RadialMlp, OneAndTwoThreadsMatchTheCompositeNet) {
  // 600 rows of 64: more than one task of the elementwise pass per thread.
  e3nn::FullyConnectedNet net = make_net({8, 64, 64, 40}, "silu");
  const at::Tensor x = make_input(600, 8, 17);
  const NetDerivatives module = net_derivatives(false, *net, x, {});
  const int threads = at::get_num_threads();
  for (int n : {1, 2}) {
    SCOPED_TRACE(std::to_string(n) + " threads");
    at::set_num_threads(n);
    expect_same(net_derivatives(true, *net, x, {}), module, 1e-12);
  }
  at::set_num_threads(threads);
}

TEST(RadialMlp, AnInputOfTheWrongWidthIsAnError) {
  e3nn::FullyConnectedNet net = make_net({8, 16, 20}, "silu");
  try {
    radial_mlp(*net, at::randn({5, 7}, at::kDouble));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected [..., 8]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(radial_mlp(*net, at::tensor(1.0, at::kDouble)), Error);
}

}  // namespace
}  // namespace klay::kernels
