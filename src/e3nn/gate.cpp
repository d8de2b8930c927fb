// e3nn.nn.Gate and e3nn.nn.NormActivation, docs/layers.md#gate, #norm-activation.
#include "e3nn/gate.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <optional>

#include "base/error.hpp"

namespace klay::e3nn {
namespace {

std::vector<std::optional<ScalarActivation>> scaled_activations(const std::vector<std::string>& names) {
  std::vector<std::optional<ScalarActivation>> acts;
  for (const auto& name : names) acts.emplace_back(ScalarActivation(name, /*normalize2mom=*/true));
  return acts;
}

bool all_scalars(const Irreps& irreps) {
  for (const auto& e : irreps)
    if (e.ir.l != 0) return false;
  return true;
}

}  // namespace

GateImpl::GateImpl(const Irreps& irreps_scalars, const std::vector<std::string>& act_scalars,
                   const Irreps& irreps_gates, const std::vector<std::string>& act_gates, const Irreps& irreps_gated,
                   at::TensorOptions options)
    : act_scalars_(irreps_scalars, scaled_activations(act_scalars)),
      act_gates_(irreps_gates, scaled_activations(act_gates)) {
  const std::string where =
      "Gate(" + irreps_scalars.to_string() + ", " + irreps_gates.to_string() + ", " + irreps_gated.to_string() + ")";
  if (!all_scalars(irreps_scalars) || !all_scalars(irreps_gates))
    throw Error(where + ": scalars and gates must be l = 0 irreps");
  if (irreps_gates.num_irreps() != irreps_gated.num_irreps())
    throw Error(where + ": there are " + std::to_string(irreps_gates.num_irreps()) + " gates for " +
                std::to_string(irreps_gated.num_irreps()) + " gated irreps");

  // e3nn's _Sortcut: the three simplified groups are concatenated, sorted, and read back per group.
  const Irreps groups[3] = {irreps_scalars.simplify(), irreps_gates.simplify(), irreps_gated.simplify()};
  const Irreps::Sorted sorted = (groups[0] + groups[1] + groups[2]).sort();
  irreps_in_ = sorted.irreps.simplify();
  const std::vector<int64_t> offsets = sorted.irreps.offsets();
  at::Tensor* columns[3] = {&scalars_columns_, &gates_columns_, &gated_columns_};
  size_t first = 0;
  for (int g = 0; g < 3; ++g) {
    std::vector<int64_t> index;
    for (size_t j = first; j < first + groups[g].size(); ++j) {
      const int k = sorted.perm[j];
      for (int64_t c = 0; c < sorted.irreps[k].dim(); ++c) index.push_back(offsets[k] + c);
    }
    *columns[g] = at::tensor(index, at::kLong);
    first += groups[g].size();
  }

  mul_ = register_module("mul", elementwise_tensor_product(groups[2], act_gates_.irreps_out(), options));
  irreps_out_ = act_scalars_.irreps_out() + mul_->irreps_out();
}

at::Tensor GateImpl::activated_scalars(const at::Tensor& features) const {
  if (features.dim() < 1 || features.size(-1) != irreps_in_.dim())
    throw Error("Gate: input has width " + std::to_string(features.dim() ? features.size(-1) : 0) + ", expected " +
                std::to_string(irreps_in_.dim()) + " (" + irreps_in_.to_string() + ")");
  return act_scalars_.forward(features.index_select(-1, scalars_columns_));
}

at::Tensor GateImpl::forward(const at::Tensor& features) const {
  const at::Tensor scalars = activated_scalars(features);
  if (gates_columns_.numel() == 0) return scalars;
  const at::Tensor gates = act_gates_.forward(features.index_select(-1, gates_columns_));
  const at::Tensor gated = mul_->forward(features.index_select(-1, gated_columns_), gates);
  return at::cat({scalars, gated}, -1);
}

at::Tensor GateImpl::forward_scalars(const at::Tensor& features) const {
  const at::Tensor scalars = activated_scalars(features);
  if (gates_columns_.numel() == 0) return scalars;
  std::vector<int64_t> gated_shape = scalars.sizes().vec();
  gated_shape.back() = irreps_out_.dim() - scalars_width();
  return at::cat({scalars, at::zeros(gated_shape, scalars.options())}, -1);
}

std::vector<Irrep> GateImpl::scalar_irreps() const {
  std::vector<Irrep> irreps;
  for (const MulIrrep& entry : act_scalars_.irreps_in())
    if (std::find(irreps.begin(), irreps.end(), entry.ir) == irreps.end()) irreps.push_back(entry.ir);
  return irreps;
}

NormActivationImpl::NormActivationImpl(const Irreps& irreps, const std::string& activation, double epsilon,
                                       at::TensorOptions options)
    : irreps_(irreps), act_(activation, /*normalize2mom=*/false), epsilon_(epsilon) {
  // e3nn o3.Norm(squared=True): uuu paths x_u ⊗ x_u → 0e with path_weight d(l), i.e. Σ_m x[u,m]².
  const Irreps simplified = irreps.simplify();
  std::vector<MulIrrep> norms;
  std::vector<TPInstruction> instructions;
  for (size_t i = 0; i < simplified.size(); ++i) {
    const int k = static_cast<int>(i);
    instructions.push_back(TPInstruction{k, k, k, ConnectionMode::uuu, false, static_cast<double>(simplified[i].ir.dim())});
    norms.push_back(MulIrrep{simplified[i].mul, Irrep{0, 1}});
  }
  const Irreps norm_irreps(std::move(norms));
  auto norm = register_module("norm", std::make_shared<torch::nn::Module>());
  norm_tp_ = norm->register_module(
      "tp", TensorProduct(simplified, simplified, norm_irreps, std::move(instructions), false, options));
  scalar_multiplier_ =
      register_module("scalar_multiplier", elementwise_tensor_product(norm_irreps.simplify(), irreps, options));
}

at::Tensor NormActivationImpl::forward(const at::Tensor& features) const {
  const double floor = epsilon_ * epsilon_;
  at::Tensor squared = norm_tp_->forward(features, features);
  squared = at::where(squared < floor, at::full({}, floor, squared.options()), squared);
  const at::Tensor norms = squared.sqrt();
  return scalar_multiplier_->forward(act_(norms) / norms, features);
}

}  // namespace klay::e3nn
