// The interface every KLay layer implements, and the registry that maps a KLay type name to a
// factory and the ports it implements. Each type's ports, config keys (types, defaults) and traits
// are declared in src/layer_table.c; the Config a factory gets reads keys and defaults from there.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/ivalue.h>
#include <torch/nn/module.h>

#include "e3nn/irreps.hpp"
#include "layers/config.hpp"

namespace klay {

// The arguments of one call. For a layer with registered ports, args[i] is the value bound to
// port i (all ports are bound; the builder checked names). For an unrestricted ("*") layer
// (ArbitraryModule), args holds the positional values (ascending YAML integer keys) followed by
// the keyword values, and keywords names that keyword tail in YAML order.
struct CallArgs {
  std::vector<c10::IValue> args;
  std::vector<std::string> keywords;
};

class Layer : public torch::nn::Module {
 public:
  // Returns the layer's whole return value: a Tensor, or a tuple for multi-output layers.
  virtual c10::IValue call(const CallArgs& call) = 0;

  // Called once per call-site at model build time with the shape of that call (how many
  // positional values, which keyword names), so a layer whose signature is only known from its
  // config (ArbitraryModule) can reject a mismatch before anything runs. Throw klay::Error.
  virtual void check_call(size_t n_positional, const std::vector<std::string>& keywords) const {}

  // The model's floating dtype (float64 unless the model runs in float32). Parameters and
  // buffers are cast by the model; this tells a layer which dtype to create new floating
  // tensors in (e.g. torch.zeros in ArbitraryModule).
  virtual void set_floating_dtype(at::ScalarType dtype) {}

  // The irreps of the features read on registered input port `port`, as the config declares
  // them, and of the return value (item < 0) or of element `item` of a returned tuple; nullopt
  // where a value is not an irreps feature. Two orders of the same blocks have the same width,
  // so the model compares each declared input with what its producer returns at load time:
  // read in another order, the features would be silently scrambled.
  virtual std::optional<e3nn::Irreps> input_irreps(int port) const { return std::nullopt; }
  virtual std::optional<e3nn::Irreps> output_irreps(int64_t item) const { return std::nullopt; }

  // A layer that treats rows one by one (the per-edge layers) names the inputs that carry the
  // rows: dimension `dim` of the value on `port` (an edge list's edges, dimension 1; edge lengths,
  // dimension 0). Row r of every returned tensor depends only on row r of these inputs and on the
  // other inputs whole. The model then answers a call whose row inputs are the first rows of an
  // earlier call's, the other inputs the same values, with the first rows of that call's results:
  // a staged graph G_0 is a prefix of G_1, so its per-edge features are computed once.
  struct RowInput {
    int port;
    int64_t dim;
  };
  virtual std::vector<RowInput> row_inputs() const { return {}; }

  // Dead features. The model works out, from its outputs backwards, which feature columns (last
  // dimension) of each call's result later calls read; a call whose readers read only some of them
  // may compute only those (an energy model's last convolution: the scalars its readout reads).
  // Columns are ascending indices; nullopt means all of them.
  using Columns = std::optional<std::vector<int64_t>>;
  // The columns of the value on registered input port `port` that columns `read` of the result
  // depend on. The default, all of them, is always right.
  virtual Columns columns_read(int port, const Columns& read) const { return std::nullopt; }
  // A layer that computes this one's result exactly in columns `read` and zero in the others, with
  // this layer's parameters (shared, so training reaches them), or nullptr where it would do no
  // less work.
  virtual std::shared_ptr<Layer> restricted_to(const std::vector<int64_t>& read) const { return nullptr; }
};

using LayerFactory = std::function<std::shared_ptr<Layer>(const Config&)>;

// The ports an implementation reads (CallArgs positions, in order) and the items it returns (one
// name: a single value). They must be its type's ports in src/layer_table.c; the layer tests prove
// it (tests/layers/test_layer_declarations.cpp). {"*"}: unrestricted (ArbitraryModule).
struct LayerPorts {
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
};

// Registration happens in static initializers of the shared runtime library.
void register_layer(const std::string& type, LayerFactory factory, LayerPorts ports);
// NULL if the type has no implementation.
const LayerFactory* find_layer_factory(const std::string& type);
const LayerPorts* find_layer_ports(const std::string& type);
std::vector<std::string> implemented_layer_types();

struct LayerRegistrar {
  LayerRegistrar(const char* type, LayerFactory factory, LayerPorts ports) {
    register_layer(type, std::move(factory), std::move(ports));
  }
};

// KLAY_REGISTER_LAYER(Type, factory, {"input", ...}, {"output", ...})
#define KLAY_REGISTER_LAYER(TYPE, FACTORY, ...) \
  static ::klay::LayerRegistrar klay_registrar_##TYPE(#TYPE, FACTORY, ::klay::LayerPorts{__VA_ARGS__})

}  // namespace klay
