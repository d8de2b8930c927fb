// Reproduces e3nn.math.normalize2mom, e3nn.nn.FullyConnectedNet and e3nn.nn.Activation
// (docs/layers.md#normalize2mom, #activation) for the scalar activations KLay names: silu, ssp,
// tanh, abs, sigmoid, relu.
//
// FullyConnectedNet state_dict keys: layer{k}.weight [h_k, h_{k+1}] Parameters (input-major, the
// transpose of torch.nn.Linear), no bias. Activation has no state.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "e3nn/irreps.hpp"

namespace klay::e3nn {

// A scalar activation, optionally scaled by its normalize2mom constant κ = E[f(z)²]^(-1/2),
// z ~ N(0,1) (1e6 samples of torch.randn, CPU generator seeded 0). e3nn applies f unscaled when
// |κ - 1| < 1e-4; none of the named activations is that close (abs: 1.0011…).
class ScalarActivation {
 public:
  // Throws klay::Error for an unknown name (the message lists the known ones).
  ScalarActivation(const std::string& name, bool normalize2mom);

  at::Tensor operator()(const at::Tensor& x) const;
  const std::string& name() const { return name_; }
  double scale() const { return scale_; }  // κ, or 1 when unscaled
  // +1 even, -1 odd, 0 neither: e3nn's numerical test on 256 points of [0, 10], tolerance 1e-5.
  int parity() const;

 private:
  std::string name_;
  std::function<at::Tensor(const at::Tensor&)> f_;
  double scale_ = 1.0;
};

// The hard-coded normalize2mom constant of a named activation (docs/layers.md#normalize2mom).
double normalize2mom_constant(const std::string& name);

// FullyConnectedNet's computation with the given layer weights W_k [h_k, h_{k+1}]: x @ (W_k / √h_k),
// `act` after every layer but the last. The net's forward, and the composite path that the radial
// MLP kernel (src/kernels/) falls back to and is tested against.
at::Tensor fully_connected_net(const at::Tensor& x, const std::vector<at::Tensor>& weights,
                               const ScalarActivation& act);

class FullyConnectedNetImpl : public torch::nn::Module {
 public:
  // hs = [h0, h1, …, hL]: L layers; act (normalize2mom-scaled) after every layer but the last.
  FullyConnectedNetImpl(std::vector<int64_t> hs, const std::string& activation, at::TensorOptions options = at::kDouble);

  // x [..., h0] → [..., hL]; layer k computes x @ (W_k / √h_k).
  at::Tensor forward(const at::Tensor& x) const;
  // Only the output columns `columns` (int64), in that order: the last layer's other columns are
  // never multiplied (a tensor product restricted to some of its paths reads only their weights).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& columns) const;

  const std::vector<int64_t>& hidden_sizes() const { return hs_; }
  const std::vector<at::Tensor>& weights() const { return weights_; }
  const ScalarActivation& activation() const { return act_; }

 private:
  std::vector<int64_t> hs_;
  ScalarActivation act_;
  std::vector<at::Tensor> weights_;  // the registered layer{k}.weight tensors
};
TORCH_MODULE(FullyConnectedNet);

// e3nn.nn.Activation(irreps_in, acts): acts[k] (normalize2mom-scaled) is applied elementwise to
// entry k, which must then be a scalar; std::nullopt leaves the entry unchanged. Output parity of an
// odd scalar follows the activation's parity; a parity-less activation on an odd scalar is an error.
class Activation {
 public:
  Activation(Irreps irreps_in, std::vector<std::optional<ScalarActivation>> acts);

  // features [..., irreps_in.dim()] → [..., irreps_out.dim()] (same width)
  at::Tensor forward(const at::Tensor& features) const;

  const Irreps& irreps_in() const { return irreps_in_; }
  const Irreps& irreps_out() const { return irreps_out_; }
  // One per entry of irreps_in(); std::nullopt leaves the entry unchanged.
  const std::vector<std::optional<ScalarActivation>>& activations() const { return acts_; }

 private:
  Irreps irreps_in_, irreps_out_;
  std::vector<std::optional<ScalarActivation>> acts_;
};

}  // namespace klay::e3nn
