// The radial MLP kernel (see the header for what it computes).
#include "kernels/radial_mlp.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "kernels/row_matmul.hpp"
#include "kernels/scalar_activation.hpp"
#include "kernels/uvu_convolution.hpp"

namespace klay::kernels {
namespace {

KernelCallCounts g_calls;

// The activations e3nn::ScalarActivation names; the kernels' own derivatives of them.
using Kind = ScaledActivation::Kind;

// Elements handed to a thread at a time.
constexpr int64_t kElementsPerTask = 16384;

// Replaces the pre-activations z (contiguous) by f(z), unscaled (the normalize2mom constant is
// folded into the next layer's weights). Where `derivative` is defined it receives f'(z), the
// derivatives ATen's backward of each function computes (ScaledActivation::apply).
template <typename T>
void activate(Kind kind, at::Tensor& z, const at::Tensor& derivative) {
  if (kind == Kind::identity && !derivative.defined()) return;
  const ScaledActivation act{kind, 1.0};
  T* data = z.data_ptr<T>();
  T* d = derivative.defined() ? derivative.data_ptr<T>() : nullptr;
  at::parallel_for(0, z.numel(), kElementsPerTask, [&](int64_t begin, int64_t end) {
    act.apply(data + begin, data + begin, d ? d + begin : nullptr, end - begin);
  });
}

// The factor folded into layer k's weights: 1/√h_k, times the normalize2mom constant κ of the
// activation before it.
std::vector<double> layer_scales(const std::vector<at::Tensor>& weights, double kappa) {
  std::vector<double> scales;
  for (size_t k = 0; k < weights.size(); ++k)
    scales.push_back((k == 0 ? 1.0 : kappa) / std::sqrt(static_cast<double>(weights[k].size(0))));
  return scales;
}

// One evaluation of the layers on rows x [N, h0]. With keep, what the backward reads is kept.
struct LayerPass {
  at::Tensor out;
  std::vector<at::Tensor> scaled;       // W_k · scale_k
  std::vector<at::Tensor> activations;  // f(z_k) of the hidden layers: the inputs of layers 1…L-1
  std::vector<at::Tensor> derivatives;  // f'(z_k) of the hidden layers
};

LayerPass run_layers(const at::Tensor& x, const std::vector<at::Tensor>& weights, const std::vector<double>& scales,
                     Kind kind, bool keep) {
  LayerPass pass;
  at::Tensor a = x;
  for (size_t k = 0; k < weights.size(); ++k) {
    pass.scaled.push_back(weights[k] * scales[k]);
    at::Tensor z = row_matmul(a, pass.scaled.back());
    if (k + 1 == weights.size()) {
      pass.out = z;
      break;
    }
    at::Tensor derivative = keep ? at::empty_like(z) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "radial_mlp_activation",
                               [&] { activate<scalar_t>(kind, z, derivative); });
    if (keep) {
      pass.activations.push_back(z);
      pass.derivatives.push_back(derivative);
    }
    a = z;
  }
  return pass;
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class RadialMlp : public torch::autograd::Function<RadialMlp> {
 public:
  // Saved: x, the weights W_k, the scaled W_k, the hidden activations and their derivatives.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, at::TensorList weights,
                            const std::string& activation, Kind kind, double kappa) {
    ++g_calls.forward;
    const std::vector<double> scales = layer_scales(weights.vec(), kappa);
    LayerPass pass = run_layers(x, weights.vec(), scales, kind, /*keep=*/true);
    variable_list saved{x};
    saved.insert(saved.end(), weights.begin(), weights.end());
    for (auto* part : {&pass.scaled, &pass.activations, &pass.derivatives})
      saved.insert(saved.end(), part->begin(), part->end());
    ctx->save_for_backward(saved);
    ctx->saved_data["scales"] = scales;
    ctx->saved_data["activation"] = activation;
    return pass.out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const std::vector<double> scales = ctx->saved_data["scales"].toDoubleVector();
    const size_t layers = scales.size();
    const at::Tensor& x = saved[0];
    const auto weight = [&](size_t k) -> const at::Tensor& { return saved[1 + k]; };
    const auto scaled = [&](size_t k) -> const at::Tensor& { return saved[1 + layers + k]; };
    // The input of layer k and the derivative of the activation that made it (k ≥ 1).
    const auto layer_input = [&](size_t k) -> const at::Tensor& { return k == 0 ? x : saved[2 * layers + k]; };
    const auto derivative = [&](size_t k) -> const at::Tensor& { return saved[3 * layers + k - 1]; };

    variable_list grads(layers + 4);  // x, the weights, and the three non-tensor arguments
    std::vector<bool> wanted{ctx->needs_input_grad(0)};
    for (size_t k = 0; k < layers; ++k) wanted.push_back(ctx->needs_input_grad(1 + k));
    // The lowest layer the gradient has to reach back to: none below it has a wanted gradient.
    size_t lowest = 0;
    while (lowest < layers && !wanted[0] && !wanted[1 + lowest]) ++lowest;
    const at::Tensor& g = grad_outputs[0];
    if (!g.defined() || lowest == layers) return grads;

    if (at::GradMode::is_enabled()) {
      ++g_calls.composite_backward;
      const e3nn::ScalarActivation act(ctx->saved_data["activation"].toStringRef(), /*normalize2mom=*/true);
      std::vector<at::Tensor> inputs{x};
      for (size_t k = 0; k < layers; ++k) inputs.push_back(weight(k));
      const auto composite = [&](const std::vector<at::Tensor>& v) {
        return e3nn::fully_connected_net(v[0], {v.begin() + 1, v.end()}, act);
      };
      return composite_partials(inputs, wanted, composite, g, grads.size());
    }

    ++g_calls.backward;
    at::Tensor grad_z = g;  // the gradient with respect to layer k's output
    for (size_t k = layers; k-- > lowest;) {
      if (wanted[1 + k]) grads[1 + k] = at::mm(layer_input(k).t(), grad_z).mul_(scales[k]);
      if (k > lowest)
        grad_z = row_matmul(grad_z, scaled(k).t(), derivative(k));
      else if (k == 0 && wanted[0])
        grads[0] = row_matmul(grad_z, scaled(0).t());
    }
    return grads;
  }
};

}  // namespace

KernelCounters radial_mlp_counters() { return g_calls.snapshot(); }

at::Tensor radial_mlp(const e3nn::FullyConnectedNetImpl& fc, const at::Tensor& x, const at::Tensor& columns) {
  std::vector<at::Tensor> weights = fc.weights();
  const int64_t inputs = weights.front().size(0);
  if (x.dim() == 0 || x.size(-1) != inputs)
    throw Error("radial MLP: the input is " + c10::str(x.sizes()) + ", expected [..., " + std::to_string(inputs) +
                "] (the net's input size)");
  if (columns.defined()) weights.back() = weights.back().index_select(1, columns);

  const e3nn::ScalarActivation& act = fc.activation();
  const std::optional<ScaledActivation> kernels_act = scaled_activation(act);
  bool fusable = kernels_act && kernels_take({x});
  bool any_weight_grad = false;
  for (const at::Tensor& w : weights) {
    fusable = fusable && kernels_take({x, w});
    any_weight_grad = any_weight_grad || w.requires_grad();
  }
  if (!fusable) return e3nn::fully_connected_net(x, weights, act);

  std::vector<int64_t> out_sizes = x.sizes().vec();
  out_sizes.back() = weights.back().size(1);
  const at::Tensor rows = x.reshape({-1, inputs});
  at::Tensor out;
  if (at::GradMode::is_enabled() && (x.requires_grad() || any_weight_grad)) {
    out = RadialMlp::apply(rows, at::TensorList(weights), act.name(), kernels_act->kind, act.scale());
  } else {
    ++g_calls.forward;
    out = run_layers(rows, weights, layer_scales(weights, act.scale()), kernels_act->kind, /*keep=*/false).out;
  }
  return out.view(out_sizes);
}

}  // namespace klay::kernels
