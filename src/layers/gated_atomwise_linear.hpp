// GatedAtomwiseLinear (docs/layers.md#gated-atomwise-linear), declared here because
// E3AttentionPooling uses three of them as sub-modules (h_q, fc_k, fc_v); defined in
// atomwise_linear.cpp.
#pragma once
#include <string>

#include <ATen/core/Tensor.h>

#include "e3nn/gate.hpp"
#include "e3nn/irreps.hpp"
#include "e3nn/linear.hpp"
#include "kernels/gate.hpp"
#include "kernels/linear.hpp"
#include "layers/equivariant_layer.hpp"

namespace klay {

// lin2(gate(lin1(h))).
// Ports:  h [N, dim in] → h [N, dim out].
// Config: irreps_in_block, irreps_out_block (block lists).
// Construction (Python's, including its quirk): Sc = the l=0 entries of irreps_in, Gd = the l>0
// entries (order kept), Gt = (Σ mul over Gd) x 0e; lin1 = Linear(in → simplify(Sc+Gt+Gd)) —
// *unsorted* — while the Gate(Sc,[silu],Gt,[silu],Gd) reads its input in its own *sorted* layout.
// When Gd is not sorted by (l, p) the two layouts disagree and the gate slices the wrong
// components (equivariance breaks); KLay models are trained that way, so it is kept
// (docs/layers.md#quirk-gated-linear-sort).
// lin2 = Linear(Sc + simplify(Gd) → irreps_out).
// State:  lin1.{weight,bias,output_mask}, gate.mul.{weight [0], output_mask}, lin2.{weight,bias,output_mask}.
// Python requires exactly one even scalar entry and at least one l>0 entry; others are config errors.
class GatedAtomwiseLinear : public EquivariantLayer {
 public:
  // The registered layer: irreps from its own config.
  explicit GatedAtomwiseLinear(const Config& config);
  // A sub-module of another layer whose config key `in_key` gave irreps_in (config errors name it).
  GatedAtomwiseLinear(const Config& config, const std::string& in_key, const e3nn::Irreps& irreps_in,
                      const e3nn::Irreps& irreps_out);

  // h [..., irreps_in.dim()] → [..., irreps_out.dim()]
  at::Tensor forward(const at::Tensor& h) const {
    return kernels::linear(*lin2_, kernels::gate(*gate_, kernels::linear(*lin1_, h)));
  }

  const e3nn::Irreps& irreps_in() const { return lin1_->irreps_in(); }
  const e3nn::Irreps& irreps_out() const { return lin2_->irreps_out(); }

  c10::IValue call(const CallArgs& call) override;

 private:
  void build(const Config& config, const std::string& in_key, const e3nn::Irreps& irreps_in,
             const e3nn::Irreps& irreps_out);

  e3nn::Linear lin1_{nullptr};
  e3nn::Gate gate_{nullptr};
  e3nn::Linear lin2_{nullptr};
};

}  // namespace klay
