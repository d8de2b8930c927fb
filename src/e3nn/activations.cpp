// normalize2mom, FullyConnectedNet, Activation — docs/layers.md#normalize2mom, #activation.
#include "e3nn/activations.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <map>

#include "base/error.hpp"

namespace klay::e3nn {
namespace {

struct NamedActivation {
  std::function<at::Tensor(const at::Tensor&)> f;
  double normalize2mom;  // κ from 1e6 torch.randn float64 samples, CPU generator seeded 0
};

const std::map<std::string, NamedActivation>& named_activations() {
  static const std::map<std::string, NamedActivation> table = {
      {"silu", {[](const at::Tensor& x) { return at::silu(x); }, 1.6791767923989418}},
      {"ssp", {[](const at::Tensor& x) { return at::softplus(x, 1, 20) - std::log(2.0); }, 1.878204668541552}},
      {"tanh", {[](const at::Tensor& x) { return at::tanh(x); }, 1.5937334472592695}},
      {"abs", {[](const at::Tensor& x) { return at::abs(x); }, 1.001110600838467}},
      {"sigmoid", {[](const at::Tensor& x) { return at::sigmoid(x); }, 1.8467055342154763}},
      {"relu", {[](const at::Tensor& x) { return at::relu(x); }, 1.4163393446331365}},
  };
  return table;
}

const NamedActivation& find_activation(const std::string& name) {
  const auto& table = named_activations();
  const auto it = table.find(name);
  if (it == table.end()) {
    std::string known;
    for (const auto& [key, value] : table) known += (known.empty() ? "" : ", ") + key;
    throw Error("unknown activation '" + name + "' (known: " + known + ")");
  }
  return it->second;
}

}  // namespace

double normalize2mom_constant(const std::string& name) { return find_activation(name).normalize2mom; }

ScalarActivation::ScalarActivation(const std::string& name, bool normalize2mom) : name_(name) {
  const NamedActivation& entry = find_activation(name);
  f_ = entry.f;
  if (normalize2mom && std::abs(entry.normalize2mom - 1.0) >= 1e-4) scale_ = entry.normalize2mom;
}

at::Tensor ScalarActivation::operator()(const at::Tensor& x) const { return scale_ == 1.0 ? f_(x) : f_(x) * scale_; }

int ScalarActivation::parity() const {
  const at::Tensor x = at::linspace(0, 10, 256, at::kDouble);
  const at::Tensor a1 = (*this)(x), a2 = (*this)(-x);
  if ((a1 - a2).abs().max().item<double>() < 1e-5) return 1;
  if ((a1 + a2).abs().max().item<double>() < 1e-5) return -1;
  return 0;
}

FullyConnectedNetImpl::FullyConnectedNetImpl(std::vector<int64_t> hs, const std::string& activation,
                                             at::TensorOptions options)
    : hs_(std::move(hs)), act_(activation, /*normalize2mom=*/true) {
  if (hs_.size() < 2) throw Error("FullyConnectedNet needs at least an input and an output size");
  for (size_t k = 0; k + 1 < hs_.size(); ++k) {
    auto layer = register_module("layer" + std::to_string(k), std::make_shared<torch::nn::Module>());
    weights_.push_back(layer->register_parameter("weight", at::randn({hs_[k], hs_[k + 1]}, options)));
  }
}

at::Tensor FullyConnectedNetImpl::forward(const at::Tensor& input) const { return forward(input, at::Tensor()); }

at::Tensor FullyConnectedNetImpl::forward(const at::Tensor& input, const at::Tensor& columns) const {
  if (!columns.defined()) return fully_connected_net(input, weights_, act_);
  std::vector<at::Tensor> weights = weights_;
  weights.back() = weights.back().index_select(1, columns);
  return fully_connected_net(input, weights, act_);
}

at::Tensor fully_connected_net(const at::Tensor& input, const std::vector<at::Tensor>& weights,
                               const ScalarActivation& act) {
  at::Tensor x = input;
  for (size_t k = 0; k < weights.size(); ++k) {
    x = at::matmul(x, weights[k] / std::sqrt(static_cast<double>(weights[k].size(0))));
    if (k + 1 < weights.size()) x = act(x);
  }
  return x;
}

Activation::Activation(Irreps irreps_in, std::vector<std::optional<ScalarActivation>> acts)
    : irreps_in_(std::move(irreps_in)), acts_(std::move(acts)) {
  if (irreps_in_.size() != acts_.size())
    throw Error("Activation(" + irreps_in_.to_string() + "): " + std::to_string(acts_.size()) +
                " activations for " + std::to_string(irreps_in_.size()) + " irreps entries");
  std::vector<MulIrrep> out;
  for (size_t k = 0; k < acts_.size(); ++k) {
    MulIrrep entry = irreps_in_[k];
    if (acts_[k]) {
      if (entry.ir.l != 0)
        throw Error("Activation(" + irreps_in_.to_string() + "): cannot apply '" + acts_[k]->name() +
                    "' to the non-scalar entry " + entry.ir.to_string());
      if (entry.ir.p == -1) {
        entry.ir.p = acts_[k]->parity();
        if (entry.ir.p == 0)
          throw Error("Activation(" + irreps_in_.to_string() + "): '" + acts_[k]->name() +
                      "' is neither even nor odd, so it cannot act on the odd scalars " + entry.ir.to_string());
      }
    }
    out.push_back(entry);
  }
  irreps_out_ = Irreps(std::move(out));
}

at::Tensor Activation::forward(const at::Tensor& features) const {
  if (irreps_in_.empty()) return at::zeros_like(features);
  std::vector<at::Tensor> pieces = features.split_with_sizes(irreps_in_.widths(), -1);
  for (size_t k = 0; k < acts_.size(); ++k)
    if (acts_[k]) pieces[k] = (*acts_[k])(pieces[k]);
  return pieces.size() == 1 ? pieces[0] : at::cat(pieces, -1);
}

}  // namespace klay::e3nn
