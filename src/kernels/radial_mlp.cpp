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
#include "kernels/vector_units.hpp"

namespace klay::kernels {

std::vector<double> radial_layer_scales(const std::vector<at::Tensor>& weights, double kappa) {
  std::vector<double> scales;
  for (size_t k = 0; k < weights.size(); ++k)
    scales.push_back((k == 0 ? 1.0 : kappa) / std::sqrt(static_cast<double>(weights[k].size(0))));
  return scales;
}

bool radial_layers_blockwise(const at::Tensor& x, const std::vector<at::Tensor>& matrices) {
  if (!wide_vector_units()) return false;
  for (const at::Tensor& m : matrices)
    if (!rows_times_takes(m.numel() * m.element_size()) || m.scalar_type() != x.scalar_type()) return false;
  return true;
}

// One loop, where mul, or a transpose and its copy, were three or four ATen operations per layer
// and call.
at::Tensor radial_scaled_weight(const at::Tensor& weight, double scale, bool transposed) {
  const at::Tensor w = weight.contiguous();
  const int64_t rows = w.size(0), cols = w.size(1);
  at::Tensor out = transposed ? at::empty({cols, rows}, w.options()) : at::empty({rows, cols}, w.options());
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "radial_mlp_scaled_weight", [&] {
    const scalar_t* in = w.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const scalar_t s = static_cast<scalar_t>(scale);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) o[transposed ? j * rows + i : i * cols + j] = in[i * cols + j] * s;
  });
  return out;
}

template <typename T>
void RadialRows<T>::forward(const T* x, int64_t ldx, int64_t rows, const std::function<T*(size_t)>& hidden,
                            const std::function<T*(size_t)>& derivative, T* out) const {
  const size_t layers = scaled.size();
  const T* a = x;
  int64_t lda = ldx;
  for (size_t k = 0; k < layers; ++k) {
    const int64_t inner = widths[k], cols = widths[k + 1];
    const bool last = k + 1 == layers;
    T* z = last ? out : hidden(k);
    rows_times<T>(a, lda, scaled[k], cols, z, cols, rows, inner, cols);
    if (last) break;
    activation.apply(z, z, derivative(k), rows * cols);
    a = z;
    lda = cols;
  }
}

template <typename T>
void RadialRows<T>::backward(const T* g, int64_t ldg, int64_t rows, const std::function<const T*(size_t)>& derivative,
                             const std::function<T*(size_t)>& gradient, T* grad_x) const {
  const T* gz = g;
  for (size_t k = scaled.size(); k-- > 0;) {
    const int64_t inner = widths[k + 1], cols = widths[k];
    T* dst = k == 0 ? grad_x : gradient(k);
    rows_times<T>(gz, ldg, transposed[k], cols, dst, cols, rows, inner, cols, k == 0 ? nullptr : derivative(k), cols);
    gz = dst;
    ldg = cols;
  }
}

template <typename T>
RadialRows<T> radial_rows(const std::vector<at::Tensor>& scaled, const std::vector<at::Tensor>& transposed,
                          ScaledActivation::Kind kind) {
  RadialRows<T> net{{}, {}, {scaled.front().size(0)}, ScaledActivation{kind, 1.0}};
  for (const at::Tensor& m : scaled) {
    net.scaled.push_back(m.data_ptr<T>());
    net.widths.push_back(m.size(1));
  }
  for (const at::Tensor& m : transposed) net.transposed.push_back(m.data_ptr<T>());
  return net;
}

template struct RadialRows<float>;
template struct RadialRows<double>;
template RadialRows<float> radial_rows(const std::vector<at::Tensor>&, const std::vector<at::Tensor>&,
                                       ScaledActivation::Kind);
template RadialRows<double> radial_rows(const std::vector<at::Tensor>&, const std::vector<at::Tensor>&,
                                        ScaledActivation::Kind);

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

// What an evaluation of the layers keeps besides the output: nothing (inference), the activations'
// derivatives (all the input's gradient reads), or the hidden activations too (the weights'
// gradients read those: the backward evaluates the layers again when it is asked for them, so that
// the forward does not write them to memory for MD, which never asks).
enum class Keep { nothing, derivatives, activations };

// One evaluation of the layers on rows x [N, h0].
struct LayerPass {
  at::Tensor out;
  std::vector<at::Tensor> scaled;       // W_k · scale_k
  std::vector<at::Tensor> activations;  // f(z_k) of the hidden layers: the inputs of layers 1…L-1
  std::vector<at::Tensor> derivatives;  // f'(z_k) of the hidden layers
};

// Rows a thread carries through every layer at a time, so that their activations stay in cache.
constexpr int64_t kRowsPerBlock = 256;

// The widest layer output, for the blocks' scratch rows.
int64_t widest(const std::vector<at::Tensor>& matrices) {
  int64_t width = 0;
  for (const at::Tensor& m : matrices) width = std::max({width, m.size(0), m.size(1)});
  return width;
}

// run_layers on the threads' slices of the rows, kRowsPerBlock rows through every layer at a time,
// in one parallel region; pass.scaled holds the (contiguous) scaled weights.
template <typename T>
void forward_blocks(const at::Tensor& x, Kind kind, Keep keep, LayerPass& pass) {
  const size_t layers = pass.scaled.size();
  const int64_t n = x.size(0);
  pass.out = at::empty({n, pass.scaled.back().size(1)}, x.options());
  for (size_t k = 0; k + 1 < layers; ++k) {
    if (keep == Keep::activations) pass.activations.push_back(at::empty({n, pass.scaled[k].size(1)}, x.options()));
    if (keep != Keep::nothing) pass.derivatives.push_back(at::empty({n, pass.scaled[k].size(1)}, x.options()));
  }
  const RadialRows<T> net = radial_rows<T>(pass.scaled, {}, kind);
  const int64_t width = widest(pass.scaled);
  at::parallel_for(0, n, kRowsPerBlock, [&](int64_t begin, int64_t end) {
    std::vector<T> scratch(keep == Keep::activations ? 0 : 2 * kRowsPerBlock * width);
    for (int64_t r0 = begin; r0 < end; r0 += kRowsPerBlock) {
      const auto rows_of = [&](const at::Tensor& t) { return t.data_ptr<T>() + r0 * t.size(1); };
      net.forward(
          x.data_ptr<T>() + r0 * x.stride(0), x.stride(0), std::min(kRowsPerBlock, end - r0),
          [&](size_t k) {
            return keep == Keep::activations ? rows_of(pass.activations[k])
                                             : scratch.data() + (k % 2) * kRowsPerBlock * width;
          },
          [&](size_t k) { return keep != Keep::nothing ? rows_of(pass.derivatives[k]) : nullptr; }, rows_of(pass.out));
    }
  });
}

LayerPass run_layers(const at::Tensor& x, const std::vector<at::Tensor>& weights, const std::vector<double>& scales,
                     Kind kind, Keep keep) {
  LayerPass pass;
  for (size_t k = 0; k < weights.size(); ++k) pass.scaled.push_back(radial_scaled_weight(weights[k], scales[k], false));
  if (x.stride(-1) == 1 && radial_layers_blockwise(x, pass.scaled)) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "radial_mlp_forward", [&] { forward_blocks<scalar_t>(x, kind, keep, pass); });
    return pass;
  }
  at::Tensor a = x;
  for (size_t k = 0; k < weights.size(); ++k) {
    at::Tensor z = row_matmul(a, pass.scaled[k]);
    if (k + 1 == weights.size()) {
      pass.out = z;
      break;
    }
    at::Tensor derivative = keep != Keep::nothing ? at::empty_like(z) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "radial_mlp_activation",
                               [&] { activate<scalar_t>(kind, z, derivative); });
    if (keep == Keep::activations) pass.activations.push_back(z);
    if (keep != Keep::nothing) pass.derivatives.push_back(derivative);
    a = z;
  }
  return pass;
}

// The input's gradient grad_x [n, h_0] from the output's g, transposed[k] = (W_k·scale_k)ᵀ
// contiguous and derivative(k) the saved f'(z) of layer k's input (k ≥ 1), as the layer-by-layer
// backward computes it, a block of rows through every layer at a time in one parallel region.
template <typename T, typename Derivative>
void backward_blocks(const at::Tensor& g, const std::vector<at::Tensor>& scaled,
                     const std::vector<at::Tensor>& transposed, const Derivative& derivative, at::Tensor& grad_x) {
  const int64_t n = g.size(0), width = widest(transposed);
  const RadialRows<T> net = radial_rows<T>(scaled, transposed, Kind::identity);
  at::parallel_for(0, n, kRowsPerBlock, [&](int64_t begin, int64_t end) {
    std::vector<T> scratch(2 * kRowsPerBlock * width);
    for (int64_t r0 = begin; r0 < end; r0 += kRowsPerBlock)
      net.backward(
          g.data_ptr<T>() + r0 * g.stride(0), g.stride(0), std::min(kRowsPerBlock, end - r0),
          [&](size_t k) -> const T* { return derivative(k) + r0 * net.widths[k]; },
          [&](size_t k) { return scratch.data() + (k % 2) * kRowsPerBlock * width; },
          grad_x.data_ptr<T>() + r0 * net.widths[0]);
  });
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class RadialMlp : public torch::autograd::Function<RadialMlp> {
 public:
  // Saved: x, the weights W_k, the scaled W_k and the derivatives of the hidden activations.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, at::TensorList weights,
                            const std::string& activation, Kind kind, double kappa) {
    ++g_calls.forward;
    const std::vector<double> scales = radial_layer_scales(weights.vec(), kappa);
    LayerPass pass = run_layers(x, weights.vec(), scales, kind, Keep::derivatives);
    variable_list saved{x};
    saved.insert(saved.end(), weights.begin(), weights.end());
    for (auto* part : {&pass.scaled, &pass.derivatives}) saved.insert(saved.end(), part->begin(), part->end());
    ctx->save_for_backward(saved);
    ctx->saved_data["scales"] = scales;
    ctx->saved_data["activation"] = activation;
    ctx->saved_data["kind"] = static_cast<int64_t>(kind);
    return pass.out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const std::vector<double> scales = ctx->saved_data["scales"].toDoubleVector();
    const size_t layers = scales.size();
    const at::Tensor& x = saved[0];
    const auto weight = [&](size_t k) -> const at::Tensor& { return saved[1 + k]; };
    const auto scaled = [&](size_t k) -> const at::Tensor& { return saved[1 + layers + k]; };
    // The derivative of the activation that made layer k's input (k ≥ 1).
    const auto derivative = [&](size_t k) -> const at::Tensor& { return saved[2 * layers + k]; };

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
    // Only the input's gradient (MD's forces): every layer back to the input a block of rows at a time.
    std::vector<at::Tensor> transposed;
    if (lowest == 0 && std::none_of(wanted.begin() + 1, wanted.end(), [](bool w) { return w; }))
      for (size_t k = 0; k < layers; ++k) transposed.push_back(radial_scaled_weight(weight(k), scales[k], true));
    if (!transposed.empty() && g.stride(-1) == 1 && radial_layers_blockwise(x, transposed)) {
      // Row-major whatever x's layout (empty_like would keep a transposed x's strides).
      grads[0] = at::empty({x.size(0), x.size(1)}, x.options());
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "radial_mlp_backward", [&] {
        backward_blocks<scalar_t>(g, {saved.begin() + 1 + layers, saved.begin() + 1 + 2 * layers}, transposed,
                                  [&](size_t k) { return derivative(k).data_ptr<scalar_t>(); }, grads[0]);
      });
      return grads;
    }
    // The weights' gradients read the layers' inputs, evaluated again.
    LayerPass inputs;
    if (std::any_of(wanted.begin() + 1, wanted.end(), [](bool w) { return w; })) {
      std::vector<at::Tensor> weights;
      for (size_t k = 0; k < layers; ++k) weights.push_back(weight(k));
      inputs = run_layers(x, weights, scales, static_cast<Kind>(ctx->saved_data["kind"].toInt()), Keep::activations);
    }
    const auto layer_input = [&](size_t k) -> const at::Tensor& { return k == 0 ? x : inputs.activations[k - 1]; };
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
  const at::Tensor rows = as_rows(x, inputs);
  at::Tensor out;
  if (at::GradMode::is_enabled() && (x.requires_grad() || any_weight_grad)) {
    out = RadialMlp::apply(rows, at::TensorList(weights), act.name(), kernels_act->kind, act.scale());
  } else {
    ++g_calls.forward;
    out = run_layers(rows, weights, radial_layer_scales(weights, act.scale()), kernels_act->kind, Keep::nothing).out;
  }
  return viewed_as(out, out_sizes);
}

}  // namespace klay::kernels
