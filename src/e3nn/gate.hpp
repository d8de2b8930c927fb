// Reproduces e3nn.nn.Gate (docs/layers.md#gate) and e3nn.nn.NormActivation (#norm-activation).
//
// Gate state_dict keys: mul.weight [0], mul.output_mask [dim(gated)] (the ElementwiseTensorProduct
// that multiplies gated irreps by their gates). Its input layout is the *sorted* concatenation
// sort(simplify(S) + simplify(G) + simplify(D)) whatever order the caller produced (the quirk in
// docs/layers.md#quirk-gated-linear-sort depends on this), output = Activation(S) + gated·gates.
//
// NormActivation state_dict keys: norm.tp.weight [0], norm.tp.output_mask [num_irreps],
// scalar_multiplier.weight [0], scalar_multiplier.output_mask [dim].
#pragma once
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "e3nn/activations.hpp"
#include "e3nn/irreps.hpp"
#include "e3nn/tensor_product.hpp"

namespace klay::e3nn {

class GateImpl : public torch::nn::Module {
 public:
  // One activation name per entry of irreps_scalars / irreps_gates (normalize2mom-scaled).
  // irreps_scalars and irreps_gates must be scalars; gates.num_irreps == gated.num_irreps.
  GateImpl(const Irreps& irreps_scalars, const std::vector<std::string>& act_scalars, const Irreps& irreps_gates,
           const std::vector<std::string>& act_gates, const Irreps& irreps_gated,
           at::TensorOptions options = at::kDouble);

  // features [..., irreps_in().dim()] → [..., irreps_out().dim()]
  at::Tensor forward(const at::Tensor& features) const;

  const Irreps& irreps_in() const { return irreps_in_; }    // simplify(sort(S + G + D))
  const Irreps& irreps_out() const { return irreps_out_; }  // Activation-out(S) + mul.irreps_out

  // The activated scalars only: the first scalars_width() output columns, the gated columns zero.
  // It reads the input columns of the irreps in scalar_irreps() (the gates' among them, if equal).
  at::Tensor forward_scalars(const at::Tensor& features) const;
  int64_t scalars_width() const { return act_scalars_.irreps_out().dim(); }
  std::vector<Irrep> scalar_irreps() const;

  // What the fused gate (src/kernels/gate.hpp) evaluates: each group's input columns (int64), the
  // activations, and the product that multiplies the gated irreps by their activated gates.
  const at::Tensor& scalars_columns() const { return scalars_columns_; }
  const at::Tensor& gates_columns() const { return gates_columns_; }
  const at::Tensor& gated_columns() const { return gated_columns_; }
  const Activation& scalars_activation() const { return act_scalars_; }
  const Activation& gates_activation() const { return act_gates_; }
  const TensorProductImpl& gated_product() const { return *mul_; }

 private:
  // Activation(S) of the input's scalars, after checking the input's width.
  at::Tensor activated_scalars(const at::Tensor& features) const;

  Irreps irreps_in_, irreps_out_;
  Activation act_scalars_, act_gates_;
  at::Tensor scalars_columns_, gates_columns_, gated_columns_;  // int64 positions in the input
  TensorProduct mul_{nullptr};
};
TORCH_MODULE(Gate);

class NormActivationImpl : public torch::nn::Module {
 public:
  // out[u,m] = x[u,m] · f(r_u) / r_u with r_u = max(|x_u|, epsilon); f is NOT normalize2mom-scaled
  // (KLay's ConvNetLayer "norm" nonlinearity). Equivalent to e3nn's normalize=True, bias=False.
  NormActivationImpl(const Irreps& irreps, const std::string& activation, double epsilon = 1e-8,
                     at::TensorOptions options = at::kDouble);

  at::Tensor forward(const at::Tensor& features) const;

  const Irreps& irreps_in() const { return irreps_; }
  const Irreps& irreps_out() const { return irreps_; }

  // What the fused norm activation (src/kernels/norm_activation.hpp) evaluates.
  const ScalarActivation& activation() const { return act_; }
  double epsilon() const { return epsilon_; }
  const TensorProductImpl& squared_norms() const { return *norm_tp_; }
  const TensorProductImpl& scalar_multiplier() const { return *scalar_multiplier_; }

 private:
  Irreps irreps_;
  ScalarActivation act_;
  double epsilon_;
  TensorProduct norm_tp_{nullptr};            // Σ_m x[u,m]² per copy (e3nn o3.Norm, squared)
  TensorProduct scalar_multiplier_{nullptr};  // copy u times scalar u
};
TORCH_MODULE(NormActivation);

}  // namespace klay::e3nn
