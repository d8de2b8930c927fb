// A Layer that knows its KLay type and YAML name, so that run-time errors say which layer of the
// model failed ("AtomwiseSumIndex 'total_energy': ...") and inputs are checked with clear messages.
#pragma once
#include <string>

#include <ATen/core/Tensor.h>

#include "runtime/error.hpp"
#include "runtime/layer.hpp"

namespace klay {

class NamedLayer : public Layer {
 public:
  NamedLayer(std::string type, const Config& config)
      : type_(std::move(type)), name_(config.layer_name()) {}

 protected:
  [[noreturn]] void fail(const std::string& message) const {
    throw Error(type_ + " '" + name_ + "': " + message);
  }

  // The tensor bound to input port `index` (named `port` in messages).
  at::Tensor tensor_input(const CallArgs& call, size_t index, const char* port) const {
    if (index >= call.args.size()) fail(std::string("input ") + port + " is not bound");
    const c10::IValue& value = call.args[index];
    if (!value.isTensor()) fail(std::string("input ") + port + " must be a tensor, got " + value.tagKind());
    return value.toTensor();
  }

  // As tensor_input, and the tensor must be int64 (indices, atom labels).
  at::Tensor index_input(const CallArgs& call, size_t index, const char* port) const {
    at::Tensor tensor = tensor_input(call, index, port);
    if (tensor.scalar_type() != at::kLong)
      fail(std::string("input ") + port + " must be int64, got " + c10::toString(tensor.scalar_type()));
    return tensor;
  }

 private:
  std::string type_;
  std::string name_;
};

// Factory for KLAY_REGISTER_LAYER: layers whose constructor takes the Config.
template <class LayerType>
std::shared_ptr<Layer> make_layer(const Config& config) {
  return std::make_shared<LayerType>(config);
}

}  // namespace klay
