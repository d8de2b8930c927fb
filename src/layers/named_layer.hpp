// A Layer that knows its KLay type and YAML name, so that run-time errors say which layer of the
// model failed ("AtomwiseSumIndex 'total_energy': ...") and inputs are checked with clear messages.
#pragma once
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/util/StringUtil.h>

#include "base/error.hpp"
#include "layers/layer.hpp"

namespace klay {

class NamedLayer : public Layer {
 public:
  NamedLayer(std::string type, const Config& config)
      : type_(std::move(type)), name_(config.layer_name()), ports_(find_layer_ports(type_)) {}

 protected:
  [[noreturn]] void fail(const std::string& message) const {
    throw Error(type_ + " '" + name_ + "': " + message);
  }

  // The tensor bound to input port `index`, which the type registered as `port`: a layer that reads
  // a port by the wrong position fails here, in every layer test, rather than computing with the
  // wrong tensor.
  at::Tensor tensor_input(const CallArgs& call, size_t index, const char* port) const {
    if (ports_ && (index >= ports_->inputs.size() || ports_->inputs[index] != port))
      fail(std::string("reads input ") + port + " at position " + std::to_string(index) +
           ", which is not where its registered ports have it");
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

  // Number of edges of an edge_index input, which must be [2, E].
  int64_t edge_count(const at::Tensor& edge_index) const {
    if (edge_index.dim() != 2 || edge_index.size(0) != 2)
      fail("edge_index must be [2, E], got " + c10::str(edge_index.sizes()));
    return edge_index.size(1);
  }

  // Every node an edge names must be one of the n_nodes nodes.
  void check_edge_nodes(const at::Tensor& edge_index, int64_t n_nodes) const {
    if (first_outside(edge_index, 0, n_nodes - 1))
      fail("edge_index refers to a node outside 0.." + std::to_string(n_nodes - 1));
  }

  // The first of the int64 values of x outside [lo, hi], if any. On the CPU one pass over them:
  // ATen's comparisons and reductions, every MD step, cost more than the small layers' kernels.
  static std::optional<int64_t> first_outside(const at::Tensor& x, int64_t lo, int64_t hi) {
    if (x.numel() == 0) return std::nullopt;
    if (x.device().is_cpu()) {
      const at::Tensor values = x.contiguous();
      const int64_t* p = values.data_ptr<int64_t>();
      const int64_t* end = p + values.numel();
      const int64_t* bad = std::find_if(p, end, [&](int64_t v) { return v < lo || v > hi; });
      return bad == end ? std::nullopt : std::optional<int64_t>(*bad);
    }
    const at::Tensor outside = x.lt(lo).logical_or(x.gt(hi));
    if (!outside.any().item<bool>()) return std::nullopt;
    return x.masked_select(outside)[0].item<int64_t>();
  }

 private:
  std::string type_;
  std::string name_;
  const LayerPorts* ports_;  // NULL for a type without registration
};

// Factory for KLAY_REGISTER_LAYER: layers whose constructor takes the Config.
template <class LayerType>
std::shared_ptr<Layer> make_layer(const Config& config) {
  return std::make_shared<LayerType>(config);
}

}  // namespace klay
