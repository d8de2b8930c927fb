// AtomwiseLinear and GatedAtomwiseLinear (docs/layers.md#atomwise-linear, #gated-atomwise-linear):
// equivariant per-atom linear maps.
#include <ATen/ATen.h>

#include "e3nn/linear.hpp"
#include "kernels/linear.hpp"
#include "layers/equivariant_layer.hpp"
#include "layers/gated_atomwise_linear.hpp"
#include "layers/irreps_config.hpp"

namespace klay {

namespace {

using e3nn::Irrep;
using e3nn::Irreps;
using e3nn::MulIrrep;

// AtomwiseLinear: h → o3.Linear(irreps_in → irreps_out)(h), irreps exactly as the blocks list them.
// Ports:  h [N, dim in] → h [N, dim out].
// Config: irreps_in_block, irreps_out_block (block lists).
// State:  linear.weight [Σ_{same irrep} mul_in·mul_out], linear.bias [0], linear.output_mask [dim out].
class AtomwiseLinear : public EquivariantLayer {
 public:
  explicit AtomwiseLinear(const Config& config) : EquivariantLayer("AtomwiseLinear", config) {
    linear_ = register_module("linear", e3nn::Linear(irreps_from_blocks(config, "irreps_in_block"),
                                                     irreps_from_blocks(config, "irreps_out_block")));
    declare_input(0, linear_->irreps_in());
    declare_output(linear_->irreps_out());
  }

  c10::IValue call(const CallArgs& call) override { return kernels::linear(*linear_, features_input(call, 0, "h")); }

  // o3.Linear maps each irrep to itself: inputs of irreps it does not output are never read.
  Columns columns_read(int port, const Columns& read) const override {
    const e3nn::Irreps& out = linear_->irreps_out();
    std::vector<e3nn::Irrep> irreps;
    if (read) {
      irreps = out.irreps_at(*read);
    } else {
      for (const e3nn::MulIrrep& entry : out) irreps.push_back(entry.ir);
    }
    return linear_->irreps_in().columns_of(irreps);
  }

 private:
  e3nn::Linear linear_{nullptr};
};

}  // namespace

// GatedAtomwiseLinear: see layers/gated_atomwise_linear.hpp.
GatedAtomwiseLinear::GatedAtomwiseLinear(const Config& config)
    : EquivariantLayer("GatedAtomwiseLinear", config) {
  build(config, "irreps_in_block", irreps_from_blocks(config, "irreps_in_block"),
        irreps_from_blocks(config, "irreps_out_block"));
}

GatedAtomwiseLinear::GatedAtomwiseLinear(const Config& config, const std::string& in_key,
                                         const Irreps& irreps_in, const Irreps& irreps_out)
    : EquivariantLayer("GatedAtomwiseLinear", config) {
  build(config, in_key, irreps_in, irreps_out);
}

void GatedAtomwiseLinear::build(const Config& config, const std::string& in_key, const Irreps& irreps_in,
                                const Irreps& irreps_out) {
  std::vector<MulIrrep> scalars, gated;
  int64_t n_gated = 0;
  for (const MulIrrep& entry : irreps_in) {
    if (entry.ir.l == 0) {
      scalars.push_back(entry);
    } else {
      gated.push_back(entry);
      n_gated += entry.mul;
    }
  }
  if (scalars.size() != 1)
    config.fail(in_key, "KLay's GatedAtomwiseLinear needs exactly one l=0 block, got " +
                            std::to_string(scalars.size()));
  if (scalars[0].ir.p != 1) config.fail(in_key, "the l=0 block must be even: silu has no parity");
  if (n_gated == 0) config.fail(in_key, "KLay's GatedAtomwiseLinear needs an l>0 block with nonzero mul");

  const Irreps irreps_scalars(scalars), irreps_gated(gated);
  const Irreps irreps_gates({MulIrrep{n_gated, Irrep{0, 1}}});
  lin1_ = register_module("lin1",
                          e3nn::Linear(irreps_in, (irreps_scalars + irreps_gates + irreps_gated).simplify()));
  gate_ = register_module("gate", e3nn::Gate(irreps_scalars, std::vector<std::string>{"silu"}, irreps_gates,
                                             std::vector<std::string>{"silu"}, irreps_gated));
  lin2_ = register_module("lin2", e3nn::Linear(irreps_scalars + irreps_gated.simplify(), irreps_out));
  declare_input(0, irreps_in);
  declare_output(irreps_out);
}

c10::IValue GatedAtomwiseLinear::call(const CallArgs& call) {
  return forward(features_input(call, 0, "h"));
}

KLAY_REGISTER_LAYER(AtomwiseLinear, make_layer<AtomwiseLinear>, {"h"}, {"h"});
KLAY_REGISTER_LAYER(GatedAtomwiseLinear, make_layer<GatedAtomwiseLinear>, {"h"}, {"h"});

}  // namespace klay
