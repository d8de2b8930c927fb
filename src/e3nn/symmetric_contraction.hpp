// Reproduces MACE's SymmetricContraction / Contraction and U_matrix_real (ACEsuit/mace-layer
// ddc076b; docs/layers.md#symmetric-contraction-detail): the element-weighted symmetric tensor
// powers of node features x [N, F, L] (L = coupling dim, channel-major) up to correlation order K.
//
// state_dict keys (prefix of the SymmetricContraction, e.g. "product.symmetric_contractions."):
//   contractions.{k}.U_matrix_{ν}   buffer, ν = 1..K, [d, L, …(ν)…, L, P_ν] (leading d absent for l = 0;
//                                   all size-1 axes squeezed, as MACE does)
//   contractions.{k}.weights_max    Parameter [num_elements, P_K, F]
//   contractions.{k}.weights.{t}    Parameter [num_elements, P_{K-1-t}, F], t = 0..K-2
// one contraction per entry k of irreps_out (its multiplicity is ignored: every output is F wide).
#pragma once
#include <functional>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include "e3nn/irreps.hpp"

namespace klay::e3nn {

// MACE's U_matrix_real(coupling_irreps, irrep_out, correlation)[-1], computed from scratch in float64:
// the generalised coupling tensors of ν copies of `coupling_irreps` that end in `irrep_out`, stacked
// on a last axis of size P_ν. Throws klay::Error if there is none (MACE's UnboundLocalError).
at::Tensor mace_u_matrix(const Irreps& coupling_irreps, const Irrep& irrep_out, int correlation);

// The nested contraction of one output irrep (docs/layers.md#symmetric-contraction-detail), for
// rows r of features x [R, L], element weights θ_K … θ_1 ([R, P_ν]) and U_K … U_1 (the registered
// U_matrix_ν, highest correlation first, each read as [A_ν, L, P_ν] with a running over its leading
// axes): b_K = step(θ_K, none, U_K), b_ν = step(θ_ν, b_{ν+1}, U_ν) → b_1 [R, A_1], where
//   step(θ, b, U)[r, a] = Σ_{i,p} U[a, i, p] x[r, i] θ[r, p]  (+ Σ_i b[r, a·L + i] x[r, i] when b is defined).
using ContractionChain = std::function<at::Tensor(const at::Tensor& x, const std::vector<at::Tensor>& thetas,
                                                  const std::vector<at::Tensor>& us)>;
// The chain from ATen operators (each step a matmul with U as a dense matrix): the reference, and
// what runs unless a caller passes a faster chain (the sparse kernel of
// src/kernels/symmetric_contraction).
at::Tensor composite_contraction_chain(const at::Tensor& x, const std::vector<at::Tensor>& thetas,
                                       const std::vector<at::Tensor>& us);

class ContractionImpl : public torch::nn::Module {
 public:
  // irreps_in: the node-feature irreps (F x0e + F x1o + …); coupling irreps = one copy of each entry.
  // Fresh weights are N(0,1) / P_ν as in MACE; U matrices are computed (load Python's over them).
  ContractionImpl(const Irreps& irreps_in, const Irrep& irrep_out, int correlation, int64_t num_elements,
                  at::TensorOptions options = at::kDouble);

  // x [N, F, L], node_attrs [N, num_elements] → [N, F·(2l_out+1)]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& node_attrs,
                     const ContractionChain& chain = composite_contraction_chain) const;

 private:
  int correlation_;
  int64_t num_features_, coupling_dim_, out_dim_;
  std::vector<at::Tensor> u_matrices_;  // U_1..U_K (registered buffers)
  std::vector<at::Tensor> weights_;     // W_1..W_K (registered parameters)
};
TORCH_MODULE(Contraction);

class SymmetricContractionImpl : public torch::nn::Module {
 public:
  SymmetricContractionImpl(const Irreps& irreps_in, const Irreps& irreps_out, int correlation, int64_t num_elements,
                           at::TensorOptions options = at::kDouble);

  // x [N, F, L], node_attrs [N, num_elements] → [N, Σ_k F·(2l_k+1)] (e3nn layout of irreps F x l_k)
  at::Tensor forward(const at::Tensor& x, const at::Tensor& node_attrs,
                     const ContractionChain& chain = composite_contraction_chain) const;

 private:
  torch::nn::ModuleList contractions_;
};
TORCH_MODULE(SymmetricContraction);

}  // namespace klay::e3nn
