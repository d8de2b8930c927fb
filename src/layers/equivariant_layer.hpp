// Base of the layers whose inputs are irreps features. Each declares, at construction, the irreps
// its config gives its feature ports and its return value: the model compares them with the
// producers' at load time (Layer::input_irreps), and a call checks each input's width against
// them, so a mis-wired model fails with the irreps in the message instead of a matmul shape
// error or scrambled features.
#pragma once
#include <map>
#include <optional>
#include <string>

#include "e3nn/irreps.hpp"
#include "layers/named_layer.hpp"

namespace klay {

class EquivariantLayer : public NamedLayer {
 public:
  using NamedLayer::NamedLayer;

  std::optional<e3nn::Irreps> input_irreps(int port) const override {
    const auto it = declared_inputs_.find(port);
    if (it == declared_inputs_.end()) return std::nullopt;
    return it->second;
  }
  std::optional<e3nn::Irreps> output_irreps(int64_t item) const override {
    return item < 0 ? declared_output_ : std::nullopt;
  }

 protected:
  void declare_input(int port, const e3nn::Irreps& irreps) { declared_inputs_[port] = irreps; }
  void declare_output(const e3nn::Irreps& irreps) { declared_output_ = irreps; }

  // The tensor bound to port `index` (declared with declare_input), which must be [n, dim].
  at::Tensor features_input(const CallArgs& call, int index, const char* port) const {
    const e3nn::Irreps& irreps = declared_inputs_.at(index);
    at::Tensor tensor = tensor_input(call, static_cast<size_t>(index), port);
    if (tensor.dim() != 2 || tensor.size(1) != irreps.dim())
      fail(std::string("input ") + port + " must be [n, " + std::to_string(irreps.dim()) + "] (irreps " +
           irreps.to_string() + "), got " + c10::str(tensor.sizes()));
    return tensor;
  }

 private:
  std::map<int, e3nn::Irreps> declared_inputs_;
  std::optional<e3nn::Irreps> declared_output_;
};

}  // namespace klay
