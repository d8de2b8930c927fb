// Reproduces e3nn.o3.TensorProduct (e3nn >= 0.5, docs/layers.md#tensor-product) for the connection modes KLay
// uses — "uvw" and "uvu" (weighted) and "uuu" (unweighted) — with irrep_normalization="component"
// and path_normalization="element", plus the constructors FullyConnectedTensorProduct (#fully-connected-tp) and
// ElementwiseTensorProduct (#elementwise-tp).
//
// Weight layout: flat, one block per weighted instruction in instruction-list order, each block
// row-major in its path shape (uvw [mul1, mul2, mul_out], uvu [mul1, mul2]). External weights are
// [..., weight_numel] with the same layout per row (or [weight_numel], shared).
//
// state_dict keys (under the module's prefix):
//   weight       [weight_numel] Parameter with internal weights (numel > 0), else an empty [0] buffer
//   output_mask  [irreps_out.dim()] buffer
//   _compiled_main_left_right._w3j_{l1}_{l2}_{l3}  [2l1+1, 2l2+1, 2l3+1] buffer, one per distinct
//       triple of a path that e3nn does not specialise (all three l >= 1, except uuu (1,1,1)).
// The forward reads those buffers, so Python's values (docs/layers.md#tp-state) are used once copied in place.
#pragma once
#include <map>
#include <optional>
#include <tuple>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "e3nn/irreps.hpp"

namespace klay::e3nn {

enum class ConnectionMode { uvw, uvu, uuu };
struct RestrictedTensorProduct;

struct TPInstruction {
  int i_in1 = 0;
  int i_in2 = 0;
  int i_out = 0;
  ConnectionMode mode = ConnectionMode::uvw;
  bool has_weight = true;  // uvw/uvu must be weighted, uuu must not
  double path_weight = 1.0;
};

class TensorProductImpl : public torch::nn::Module {
 public:
  // internal_weights: `weight` is a Parameter N(0,1) [weight_numel]; otherwise forward() takes it.
  // Throws klay::Error for an instruction that violates the selection rule or the mode's mul rule.
  TensorProductImpl(Irreps irreps_in1, Irreps irreps_in2, Irreps irreps_out, std::vector<TPInstruction> instructions,
                    bool internal_weights, at::TensorOptions options = at::kDouble);

  // x1 [..., dim1], x2 [..., dim2], weight (external only) [..., weight_numel] or [weight_numel];
  // leading dimensions broadcast. Returns [..., irreps_out.dim()].
  at::Tensor forward(const at::Tensor& x1, const at::Tensor& x2, const at::Tensor& weight = {}) const;
  // The same with `weight` in place of the internal ones, if any (a fused kernel's backward with
  // create_graph differentiates the product with respect to its weights).
  at::Tensor forward_with_weight(const at::Tensor& x1, const at::Tensor& x2, const at::Tensor& weight) const;

  const Irreps& irreps_in1() const { return irreps_in1_; }
  const Irreps& irreps_in2() const { return irreps_in2_; }
  const Irreps& irreps_out() const { return irreps_out_; }
  const std::vector<TPInstruction>& instructions() const { return instructions_; }
  int64_t weight_numel() const { return weight_numel_; }
  bool internal_weights() const { return internal_weights_; }

  at::Tensor weight;

  // One instruction as the forward evaluates it; the fused kernels (src/kernels/) plan from these.
  struct Path {
    TPInstruction ins;
    int64_t mul1, mul2, mul_out, d1, d2, d3;
    int64_t weight_size;                 // 0 for unweighted paths; weights are laid out in path order
    double coefficient;                  // √(d(l_out) · path_weight / Σ num_el into i_out)
    at::Tensor w3j;                      // the registered buffer, or a computed constant
  };
  const std::vector<Path>& paths() const { return paths_; }

 private:
  friend RestrictedTensorProduct restrict_outputs(const TensorProductImpl& tp, const std::vector<Irrep>& irreps,
                                                 bool compact);
  at::Tensor path_output(const Path& path, const at::Tensor& a, const at::Tensor& b, const at::Tensor& w) const;

  Irreps irreps_in1_, irreps_in2_, irreps_out_;
  std::vector<TPInstruction> instructions_;
  bool internal_weights_;
  int64_t weight_numel_ = 0;
  std::vector<Path> paths_;
};
TORCH_MODULE(TensorProduct);

// A product restricted to the outputs whose irrep is in `irreps`: only the instructions into those
// outputs, with the same Wigner-3j tensors (loaded values included) and the same coefficients,
// since every path into a kept output is kept. With `compact` its output holds only those entries
// (irreps_out().keeping(irreps)), otherwise the whole layout with the other columns zero. Its
// weights are external: weight_columns (int64) picks them out of the full product's weight layout
// (of its internal `weight`, shared, when it has one, so training still reaches them). tp is null
// when no instruction reaches those irreps.
struct RestrictedTensorProduct {
  TensorProduct tp{nullptr};
  at::Tensor weight_columns;
};
RestrictedTensorProduct restrict_outputs(const TensorProductImpl& tp, const std::vector<Irrep>& irreps, bool compact);

// W[0,0,0] when a [d1, 1, d3] Wigner-3j block is that number times the identity (l2 = 0, as e3nn
// computes it), read from the buffer itself since loading weights may overwrite it; else nothing.
std::optional<double> scalar_coupling(const at::Tensor& w3j);

// All (i1, i2, o, "uvw", weighted) with irreps_out[o].ir ∈ irreps1[i1].ir ⊗ irreps2[i2].ir,
// enumerated i1, then i2, then o. internal_weights=false is e3nn's shared_weights=False.
TensorProduct fully_connected_tensor_product(const Irreps& irreps_in1, const Irreps& irreps_in2,
                                             const Irreps& irreps_out, bool internal_weights = true,
                                             at::TensorOptions options = at::kDouble);

// Both inputs simplified, entries split so multiplicities pair up, then "uuu" paths to every
// irrep of ir1 ⊗ ir2 (no weights). Its irreps_in1/irreps_in2 are the split lists (same layout).
TensorProduct elementwise_tensor_product(const Irreps& irreps_in1, const Irreps& irreps_in2,
                                         at::TensorOptions options = at::kDouble);

}  // namespace klay::e3nn
