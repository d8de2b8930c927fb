// ArbitraryModule's `target: torchscript` (docs/layers.md#arbitrary-module): a scripted module
// loaded from `path`, its parameters and buffers mirrored under `module.` so KLay's weights load
// into it, called with the positional inputs and the keyword ports.
#include "layers/arbitrary_torchscript.hpp"

#include <torch/script.h>

#include "layers/arbitrary_arguments.hpp"
#include "base/error.hpp"

namespace klay::arbitrary {
namespace {

class ScriptModuleLayer : public Layer {
 public:
  ScriptModuleLayer(const std::string& path, const Config& config) : path_(path) {
    try {
      script_ = torch::jit::load(path);
    } catch (const std::exception& e) {
      const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
      config.fail("path", "cannot load TorchScript module '" + path + "': " +
                              (c10_error ? c10_error->what_without_backtrace() : e.what()));
    }
    if (!script_.find_method("forward")) config.fail("path", "TorchScript module '" + path + "' has no forward method");
    // Mirror the scripted module's tensors into `module.*` so they load and save under KLay's names;
    // the tensors are shared, so loading weights updates the scripted module itself.
    auto mirror = std::make_shared<torch::nn::Module>("ScriptModule");
    auto child_for = [&](const std::string& dotted, std::string& leaf) {
      std::shared_ptr<torch::nn::Module> m = mirror;
      size_t start = 0, dot;
      while ((dot = dotted.find('.', start)) != std::string::npos) {
        const std::string part = dotted.substr(start, dot - start);
        auto children = m->named_children();
        m = children.contains(part) ? children[part] : m->register_module(part, std::make_shared<torch::nn::Module>());
        start = dot + 1;
      }
      leaf = dotted.substr(start);
      return m;
    };
    for (const auto& p : script_.named_parameters(/*recurse=*/true)) {
      std::string leaf;
      child_for(p.name, leaf)->register_parameter(leaf, p.value, p.value.requires_grad());
    }
    for (const auto& b : script_.named_buffers(/*recurse=*/true)) {
      std::string leaf;
      child_for(b.name, leaf)->register_buffer(leaf, b.value);
    }
    register_module("module", mirror);
    script_.eval();
  }

  void train(bool on) override {
    Layer::train(on);
    script_.train(on);
  }

  c10::IValue call(const CallArgs& call) override {
    const size_t n_positional = call.args.size() - call.keywords.size();
    std::vector<c10::IValue> positional(call.args.begin(), call.args.begin() + n_positional);
    torch::jit::Kwargs kwargs;
    for (size_t k = 0; k < call.keywords.size(); ++k) kwargs[call.keywords[k]] = call.args[n_positional + k];
    return script_.get_method("forward")(std::move(positional), kwargs);
  }

  void check_call(size_t n_positional, const std::vector<std::string>& keywords) const override {
    const c10::FunctionSchema& schema = script_.get_method("forward").function().getSchema();
    std::vector<std::string> params;
    for (size_t i = 1; i < schema.arguments().size(); ++i)  // argument 0 is self
      if (!schema.arguments()[i].default_value()) params.push_back(schema.arguments()[i].name());
    if (n_positional + keywords.size() > schema.arguments().size() - 1 ||
        n_positional + keywords.size() < params.size())
      throw Error("TorchScript module '" + path_ + "': forward" + c10::toString(schema).substr(schema.name().size()) +
                  " cannot take " + call_shape_text(0, n_positional, keywords));
  }

 private:
  std::string path_;
  torch::jit::Module script_;
};

}  // namespace

std::shared_ptr<Layer> make_torchscript_layer(const std::string& path, const Config& config) {
  return std::make_shared<ScriptModuleLayer>(path, config);
}

}  // namespace klay::arbitrary
