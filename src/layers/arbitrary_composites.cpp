// ArbitraryModule's torch.nn.functional functions that are Python compositions, not ATen
// operators (docs/layers.md#arbitrary-module): normalize, softsign, tanhshrink, softmin and the
// dropouts (the identity: inference only), each bound by its Python signature.
#include "layers/arbitrary_composites.hpp"

#include <algorithm>
#include <map>

#include "layers/arbitrary_arguments.hpp"
#include "layers/arbitrary_nn_modules.hpp"
#include "layers/arbitrary_values.hpp"
#include "base/error.hpp"

namespace klay::arbitrary {
namespace {

// nn.functional functions that are Python compositions, not ATen operators. Each takes the
// Python signature; config args come first, then the call's positional values.
struct Composite {
  std::vector<PyParam> params;
  std::function<at::Tensor(const std::map<std::string, c10::IValue>&)> apply;
};

const std::map<std::string, Composite>& composites() {
  static const std::map<std::string, Composite> table = [] {
    std::map<std::string, Composite> c;
    auto tensor = [](const std::map<std::string, c10::IValue>& v, const char* name) {
      return as_tensor(v.at(name), std::string("argument '") + name + "'");
    };
    auto number = [](const std::map<std::string, c10::IValue>& v, const char* name, double fallback) {
      auto it = v.find(name);
      return it == v.end() || it->second.isNone() ? fallback : it->second.toScalar().toDouble();
    };
    c["normalize"] = {{{"input", true}, {"p", false}, {"dim", false}, {"eps", false}},
                      [=](const std::map<std::string, c10::IValue>& v) {
                        const at::Tensor x = tensor(v, "input");
                        const int64_t dim = v.count("dim") ? v.at("dim").toInt() : 1;
                        const at::Tensor norm = at::norm(x, number(v, "p", 2.0), {dim}, /*keepdim=*/true);
                        return x / norm.clamp_min(number(v, "eps", 1e-12)).expand_as(x);
                      }};
    c["softsign"] = {{{"input", true}}, [=](const std::map<std::string, c10::IValue>& v) {
                       const at::Tensor x = tensor(v, "input");
                       return x / (1 + x.abs());
                     }};
    c["tanhshrink"] = {{{"input", true}}, [=](const std::map<std::string, c10::IValue>& v) {
                         const at::Tensor x = tensor(v, "input");
                         return x - at::tanh(x);
                       }};
    c["softmin"] = {{{"input", true}, {"dim", false}, {"_stacklevel", false}, {"dtype", false}},
                    [=](const std::map<std::string, c10::IValue>& v) {
                      const at::Tensor x = tensor(v, "input");
                      std::optional<int64_t> dim;
                      if (v.count("dim") && !v.at("dim").isNone()) dim = v.at("dim").toInt();
                      return at::softmax(-x, softmax_dim(x, dim));
                    }};
    // Inference only: dropout is the identity (Python's F.dropout defaults to training=True, which
    // has no place in a deployed potential).
    for (const char* name : {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"})
      c[name] = {{{"input", true}, {"p", false}, {"training", false}, {"inplace", false}},
                 [=](const std::map<std::string, c10::IValue>& v) { return tensor(v, "input"); }};
    return c;
  }();
  return table;
}

class CompositeLayer : public Layer {
 public:
  CompositeLayer(std::string python_name, const Composite& composite, const Config& config)
      : python_name_(std::move(python_name)), composite_(composite) {
    for (const PyParam& p : composite.params) param_names_.emplace_back(p.name);
    const ConfigArguments arguments = config_arguments(config);
    try {
      for (const ConfigValue& arg : arguments.args.items) bound_args_.push_back(python_value(arg));
      for (size_t i = 0; i < arguments.kwargs.keys.size(); ++i)
        bound_kwargs_.emplace_back(key_name(arguments.kwargs.keys[i]), python_value(arguments.kwargs.items[i]));
    } catch (const Error& e) {
      config.fail("args", python_name_ + ": " + e.what());
    }
  }
  void check_call(size_t n_positional, const std::vector<std::string>& keywords) const override {
    bind(call_of_shape(n_positional, keywords));
  }
  c10::IValue call(const CallArgs& call) override { return composite_.apply(bind(call)); }

 private:
  std::map<std::string, c10::IValue> bind(const CallArgs& call) const {
    const size_t n_positional = call.args.size() - call.keywords.size();
    std::vector<c10::IValue> positional = bound_args_;
    positional.insert(positional.end(), call.args.begin(), call.args.begin() + n_positional);
    if (positional.size() > param_names_.size())
      throw Error(python_name_ + " takes at most " + std::to_string(param_names_.size()) + " arguments, " +
                  std::to_string(positional.size()) + " given");
    std::map<std::string, c10::IValue> values;
    for (size_t i = 0; i < positional.size(); ++i) values[param_names_[i]] = positional[i];
    auto add = [&](const std::string& name, const c10::IValue& v) {
      if (std::find(param_names_.begin(), param_names_.end(), name) == param_names_.end())
        throw Error(python_name_ + " got an unexpected keyword argument '" + name + "'");
      if (!values.emplace(name, v).second) throw Error(python_name_ + " got multiple values for argument '" + name + "'");
    };
    for (const auto& kw : bound_kwargs_) add(kw.first, kw.second);
    for (size_t k = 0; k < call.keywords.size(); ++k) add(call.keywords[k], call.args[n_positional + k]);
    for (const PyParam& p : composite_.params)
      if (p.required && !values.count(p.name))
        throw Error(python_name_ + " missing required argument '" + std::string(p.name) + "'");
    return values;
  }

  std::string python_name_;
  const Composite& composite_;
  std::vector<std::string> param_names_;
  std::vector<c10::IValue> bound_args_;
  std::vector<std::pair<std::string, c10::IValue>> bound_kwargs_;
};

}  // namespace

std::shared_ptr<Layer> make_composite_layer(const std::string& target, const std::string& name, const Config& config) {
  auto composite = composites().find(name);
  if (composite == composites().end()) return nullptr;
  return std::make_shared<CompositeLayer>(target, composite->second, config);
}

std::vector<std::string> composite_names() {
  std::vector<std::string> names;
  for (const auto& c : composites()) names.push_back(c.first);
  return names;
}

}  // namespace klay::arbitrary
