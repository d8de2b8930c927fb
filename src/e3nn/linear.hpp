// Reproduces e3nn.o3.Linear(irreps_in, irreps_out) as KLay uses it (docs/layers.md#linear): internal
// shared weights, no bias, path_normalization="element", irreps used exactly as given (unsimplified).
//
// Instructions: every (i_in, i_out) with equal irreps, i_in-major. Weight = flat vector of the
// instruction blocks in that order, block (i, o) row-major [mul_in(i), mul_out(o)].
// out_o = Σ_{(i,o)} Σ_u W[u,w] in_i[u,m] / √F(o), F(o) = Σ_{instructions into o} mul_in.
//
// state_dict keys (under the module's prefix):
//   weight       [weight_numel] Parameter (an empty [0] buffer when weight_numel == 0)
//   bias         [0] buffer (always empty)
//   output_mask  [irreps_out.dim()] buffer (1 over outputs reached by a non-empty instruction)
// Load weights in place (tensor.copy_), the forward reads the registered tensors.
#pragma once
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "e3nn/irreps.hpp"

namespace klay::e3nn {

class LinearImpl : public torch::nn::Module {
 public:
  // Fresh weights are N(0,1), as e3nn initialises them.
  LinearImpl(Irreps irreps_in, Irreps irreps_out, at::TensorOptions options = at::kDouble);

  // features [..., irreps_in.dim()] → [..., irreps_out.dim()]
  at::Tensor forward(const at::Tensor& features) const;
  // Only the outputs of the irreps in `only` (the other output columns are zero), from only the
  // inputs of those irreps: `features` holds just the input entries of those irreps, in order
  // (Irreps::keeping), since the others would never be read.
  at::Tensor forward(const at::Tensor& features, const std::vector<Irrep>& only) const;

  // The forward (restricted to the irreps in `only` unless it is null) with `weight` in place of the
  // module's own: the fused kernel (src/kernels/linear.hpp) differentiates it for second derivatives.
  at::Tensor forward_with_weight(const at::Tensor& features, const at::Tensor& weight,
                                 const std::vector<Irrep>* only) const;

  const Irreps& irreps_in() const { return irreps_in_; }
  const Irreps& irreps_out() const { return irreps_out_; }
  int64_t weight_numel() const { return weight_numel_; }

  at::Tensor weight;

  // All instructions between entries of one irrep act as a single matmul of the concatenated
  // inputs [·, Σ mul_in] with a block matrix [Σ mul_in, Σ mul_out] gathered from `weight`.
  struct IrrepGroup {
    std::vector<int> inputs;              // entry indices into irreps_in, in order
    std::vector<int> outputs;             // entry indices into irreps_out, in order
    std::vector<int64_t> output_columns;  // first column of each output in the block matrix
    int64_t rows = 0, cols = 0;
    Irrep ir;
    int64_t d = 1;
    at::Tensor weight_index;  // [rows·cols] int64 positions in `weight`
    at::Tensor coefficient;   // [rows, cols] 1/√F(o) per column
  };
  const std::vector<IrrepGroup>& groups() const { return groups_; }

  // Where each entry of irreps_in sits in a forward's features: its first column, or -1 for the
  // entries a restricted forward does not read (irrep not in `only`); and the features' width.
  struct InputColumns {
    std::vector<int64_t> first;
    int64_t width = 0;
  };
  InputColumns input_columns(const std::vector<Irrep>* only) const;
  // True when a forward restricted to `only` (null: unrestricted) computes the outputs of `ir`.
  static bool computes(const Irrep& ir, const std::vector<Irrep>* only);

 private:

  Irreps irreps_in_, irreps_out_;
  int64_t weight_numel_ = 0;
  std::vector<IrrepGroup> groups_;
};
TORCH_MODULE(Linear);

}  // namespace klay::e3nn
