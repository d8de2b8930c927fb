// Base of the layers whose inputs are irreps features: checks an input's width against its irreps
// so a mis-wired model fails with the irreps in the message instead of a matmul shape error.
#pragma once
#include <string>

#include "e3nn/irreps.hpp"
#include "layers/named_layer.hpp"

namespace klay {

class EquivariantLayer : public NamedLayer {
 public:
  using NamedLayer::NamedLayer;

 protected:
  // The tensor bound to port `index`, which must be [n, irreps.dim()].
  at::Tensor features_input(const CallArgs& call, size_t index, const char* port,
                            const e3nn::Irreps& irreps) const {
    at::Tensor tensor = tensor_input(call, index, port);
    if (tensor.dim() != 2 || tensor.size(1) != irreps.dim())
      fail(std::string("input ") + port + " must be [n, " + std::to_string(irreps.dim()) + "] (irreps " +
           irreps.to_string() + "), got " + c10::str(tensor.sizes()));
    return tensor;
  }
};

}  // namespace klay
