// ArbitraryModule's torch.nn targets (docs/layers.md#arbitrary-module): the table of supported
// torch.nn classes with their Python constructor signatures, torch.nn.Sequential of them, and the
// layer that holds the built module as submodule `module`.
#include "layers/arbitrary_nn_modules.hpp"

#include <map>

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "layers/arbitrary_arguments.hpp"
#include "layers/arbitrary_values.hpp"
#include "base/error.hpp"

namespace klay::arbitrary {
namespace {

// Floating parameters and buffers of a freshly built libtorch module are float32 (libtorch's
// default dtype); KLay models are float64 (the model casts to float32 later if asked).
void to_float64(torch::nn::Module& module) {
  at::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.scalar_type() == at::kFloat) p.set_data(p.to(at::kDouble));
  for (auto& b : module.buffers())
    if (b.scalar_type() == at::kFloat) b.set_data(b.to(at::kDouble));
}

// A built torch.nn module: the libtorch module (state under `module.`) and its forward.
struct NnModule {
  std::shared_ptr<torch::nn::Module> module;
  std::function<at::Tensor(const std::vector<at::Tensor>&)> forward;
  std::vector<std::string> forward_params{"input"};
};

using NnBuilder = std::function<NnModule(const PyArgs&, const Config&)>;
struct NnClass {
  std::vector<PyParam> params;
  NnBuilder build;
};

NnModule stateless(const char* name, std::function<at::Tensor(const at::Tensor&)> f) {
  NnModule m;
  m.module = std::make_shared<torch::nn::Module>(name);
  m.forward = [f = std::move(f)](const std::vector<at::Tensor>& x) { return f(x[0]); };
  return m;
}

NnModule build_nn_module(const std::string& class_name, const ConfigValue& args, const ConfigValue& kwargs,
                         const Config& config, const std::string& args_key);

const std::map<std::string, NnClass>& nn_classes() {
  static const std::map<std::string, NnClass> classes = [] {
    std::map<std::string, NnClass> c;
    const PyParam inplace{"inplace", false};
    c["Linear"] = {{{"in_features", true}, {"out_features", true}, {"bias", false}},
                   [](const PyArgs& a, const Config&) {
                     torch::nn::Linear linear(torch::nn::LinearOptions(a.get_int("in_features"), a.get_int("out_features"))
                                                  .bias(a.get_bool("bias", true)));
                     NnModule m;
                     m.module = linear.ptr();
                     m.forward = [l = linear.get()](const std::vector<at::Tensor>& x) { return l->forward(x[0]); };
                     return m;
                   }};
    c["Bilinear"] = {{{"in1_features", true}, {"in2_features", true}, {"out_features", true}, {"bias", false}},
                     [](const PyArgs& a, const Config&) {
                       torch::nn::Bilinear bilinear(torch::nn::BilinearOptions(a.get_int("in1_features"),
                                                                               a.get_int("in2_features"),
                                                                               a.get_int("out_features"))
                                                        .bias(a.get_bool("bias", true)));
                       NnModule m;
                       m.module = bilinear.ptr();
                       m.forward = [b = bilinear.get()](const std::vector<at::Tensor>& x) { return b->forward(x[0], x[1]); };
                       m.forward_params = {"input1", "input2"};
                       return m;
                     }};
    c["Embedding"] = {{{"num_embeddings", true}, {"embedding_dim", true}, {"padding_idx", false}, {"max_norm", false},
                       {"norm_type", false}, {"scale_grad_by_freq", false}, {"sparse", false}},
                      [](const PyArgs& a, const Config&) {
                        torch::nn::EmbeddingOptions options(a.get_int("num_embeddings"), a.get_int("embedding_dim"));
                        if (auto p = a.get_optional_int("padding_idx")) options.padding_idx(*p);
                        if (a.get("max_norm")) options.max_norm(a.get_double("max_norm", 0.0));
                        options.norm_type(a.get_double("norm_type", 2.0));
                        options.scale_grad_by_freq(a.get_bool("scale_grad_by_freq", false));
                        options.sparse(a.get_bool("sparse", false));
                        torch::nn::Embedding embedding(options);
                        NnModule m;
                        m.module = embedding.ptr();
                        m.forward = [e = embedding.get()](const std::vector<at::Tensor>& x) { return e->forward(x[0]); };
                        return m;
                      }};
    c["LayerNorm"] = {{{"normalized_shape", true}, {"eps", false}, {"elementwise_affine", false}},
                      [](const PyArgs& a, const Config&) {
                        torch::nn::LayerNorm norm(torch::nn::LayerNormOptions(a.get_int_list("normalized_shape"))
                                                      .eps(a.get_double("eps", 1e-5))
                                                      .elementwise_affine(a.get_bool("elementwise_affine", true)));
                        NnModule m;
                        m.module = norm.ptr();
                        m.forward = [n = norm.get()](const std::vector<at::Tensor>& x) { return n->forward(x[0]); };
                        return m;
                      }};
    c["PReLU"] = {{{"num_parameters", false}, {"init", false}}, [](const PyArgs& a, const Config&) {
                    torch::nn::PReLU prelu(torch::nn::PReLUOptions()
                                               .num_parameters(a.get_int("num_parameters", 1))
                                               .init(a.get_double("init", 0.25)));
                    NnModule m;
                    m.module = prelu.ptr();
                    m.forward = [p = prelu.get()](const std::vector<at::Tensor>& x) { return p->forward(x[0]); };
                    return m;
                  }};
    c["Identity"] = {{}, [](const PyArgs&, const Config&) { return stateless("Identity", [](const at::Tensor& x) { return x; }); }};
    // Dropout variants: the model runs in eval mode, where they are the identity.
    for (const char* name : {"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"})
      c[name] = {{{"p", false}, inplace}, [name](const PyArgs& a, const Config& config) {
                   const double p = a.get_double("p", 0.5);
                   if (p < 0.0 || p > 1.0) a.fail(std::string(name) + ": dropout probability must be in [0, 1]");
                   return stateless(name, [](const at::Tensor& x) { return x; });
                 }};
    c["Flatten"] = {{{"start_dim", false}, {"end_dim", false}}, [](const PyArgs& a, const Config&) {
                      const int64_t start = a.get_int("start_dim", 1), end = a.get_int("end_dim", -1);
                      return stateless("Flatten", [=](const at::Tensor& x) { return x.flatten(start, end); });
                    }};

    // Activations (every activation module of torch.nn that has no parameters, plus PReLU above).
    auto simple = [&](const char* name, at::Tensor (*f)(const at::Tensor&), bool has_inplace) {
      std::vector<PyParam> params;
      if (has_inplace) params.push_back(inplace);
      c[name] = {params, [name, f](const PyArgs&, const Config&) { return stateless(name, f); }};
    };
    simple("ReLU", [](const at::Tensor& x) { return at::relu(x); }, true);
    simple("ReLU6", [](const at::Tensor& x) { return at::hardtanh(x, 0.0, 6.0); }, true);
    simple("SiLU", [](const at::Tensor& x) { return at::silu(x); }, true);
    simple("Mish", [](const at::Tensor& x) { return at::mish(x); }, true);
    simple("SELU", [](const at::Tensor& x) { return at::selu(x); }, true);
    simple("Hardswish", [](const at::Tensor& x) { return at::hardswish(x); }, true);
    simple("Hardsigmoid", [](const at::Tensor& x) { return at::hardsigmoid(x); }, true);
    simple("Tanh", [](const at::Tensor& x) { return at::tanh(x); }, false);
    simple("Sigmoid", [](const at::Tensor& x) { return at::sigmoid(x); }, false);
    simple("LogSigmoid", [](const at::Tensor& x) { return at::log_sigmoid(x); }, false);
    simple("Softsign", [](const at::Tensor& x) { return x / (1 + x.abs()); }, false);
    simple("Tanhshrink", [](const at::Tensor& x) { return x - at::tanh(x); }, false);
    simple("Softmax2d", [](const at::Tensor& x) { return at::softmax(x, -3); }, false);
    c["GELU"] = {{{"approximate", false}}, [](const PyArgs& a, const Config&) {
                   const std::string approximate = a.get_string("approximate", "none");
                   if (approximate != "none" && approximate != "tanh")
                     a.fail("GELU: approximate must be 'none' or 'tanh'");
                   return stateless("GELU", [approximate](const at::Tensor& x) { return at::gelu(x, approximate); });
                 }};
    c["ELU"] = {{{"alpha", false}, inplace}, [](const PyArgs& a, const Config&) {
                  const double alpha = a.get_double("alpha", 1.0);
                  return stateless("ELU", [alpha](const at::Tensor& x) { return at::elu(x, alpha); });
                }};
    c["CELU"] = {{{"alpha", false}, inplace}, [](const PyArgs& a, const Config&) {
                   const double alpha = a.get_double("alpha", 1.0);
                   return stateless("CELU", [alpha](const at::Tensor& x) { return at::celu(x, alpha); });
                 }};
    c["LeakyReLU"] = {{{"negative_slope", false}, inplace}, [](const PyArgs& a, const Config&) {
                        const double slope = a.get_double("negative_slope", 0.01);
                        return stateless("LeakyReLU", [slope](const at::Tensor& x) { return at::leaky_relu(x, slope); });
                      }};
    c["RReLU"] = {{{"lower", false}, {"upper", false}, inplace}, [](const PyArgs& a, const Config&) {
                    const double lower = a.get_double("lower", 1.0 / 8), upper = a.get_double("upper", 1.0 / 3);
                    // eval mode: the fixed slope (lower + upper) / 2
                    return stateless("RReLU", [=](const at::Tensor& x) { return at::rrelu(x, lower, upper, false); });
                  }};
    c["Hardtanh"] = {{{"min_val", false}, {"max_val", false}, inplace}, [](const PyArgs& a, const Config&) {
                       const double lo = a.get_double("min_val", -1.0), hi = a.get_double("max_val", 1.0);
                       return stateless("Hardtanh", [=](const at::Tensor& x) { return at::hardtanh(x, lo, hi); });
                     }};
    c["Softplus"] = {{{"beta", false}, {"threshold", false}}, [](const PyArgs& a, const Config&) {
                       const double beta = a.get_double("beta", 1.0), threshold = a.get_double("threshold", 20.0);
                       return stateless("Softplus", [=](const at::Tensor& x) { return at::softplus(x, beta, threshold); });
                     }};
    c["Hardshrink"] = {{{"lambd", false}}, [](const PyArgs& a, const Config&) {
                         const double lambd = a.get_double("lambd", 0.5);
                         return stateless("Hardshrink", [=](const at::Tensor& x) { return at::hardshrink(x, lambd); });
                       }};
    c["Softshrink"] = {{{"lambd", false}}, [](const PyArgs& a, const Config&) {
                         const double lambd = a.get_double("lambd", 0.5);
                         return stateless("Softshrink", [=](const at::Tensor& x) { return at::softshrink(x, lambd); });
                       }};
    c["Threshold"] = {{{"threshold", true}, {"value", true}, inplace}, [](const PyArgs& a, const Config&) {
                        const double threshold = a.get_double("threshold", 0.0), value = a.get_double("value", 0.0);
                        return stateless("Threshold", [=](const at::Tensor& x) { return at::threshold(x, threshold, value); });
                      }};
    c["GLU"] = {{{"dim", false}}, [](const PyArgs& a, const Config&) {
                  const int64_t dim = a.get_int("dim", -1);
                  return stateless("GLU", [=](const at::Tensor& x) { return at::glu(x, dim); });
                }};
    c["Softmax"] = {{{"dim", false}}, [](const PyArgs& a, const Config&) {
                      const auto dim = a.get_optional_int("dim");
                      return stateless("Softmax", [=](const at::Tensor& x) { return at::softmax(x, softmax_dim(x, dim)); });
                    }};
    c["LogSoftmax"] = {{{"dim", false}}, [](const PyArgs& a, const Config&) {
                         const auto dim = a.get_optional_int("dim");
                         return stateless("LogSoftmax", [=](const at::Tensor& x) { return at::log_softmax(x, softmax_dim(x, dim)); });
                       }};
    c["Softmin"] = {{{"dim", false}}, [](const PyArgs& a, const Config&) {
                      const auto dim = a.get_optional_int("dim");
                      return stateless("Softmin", [=](const at::Tensor& x) { return at::softmax(-x, softmax_dim(x, dim)); });
                    }};
    return c;
  }();
  return classes;
}

// torch.nn.Sequential: `args` is the list of children, each {target, args, kwargs}.
NnModule build_sequential(const ConfigValue& args, const Config& config, const std::string& args_key) {
  if (args.kind != ConfigValue::Kind::List)
    config.fail(args_key, "torch.nn.Sequential takes its children as `args`: a list of {target, args, kwargs}");
  auto sequential = std::make_shared<torch::nn::Module>("Sequential");
  std::vector<std::function<at::Tensor(const std::vector<at::Tensor>&)>> steps;
  static const ConfigValue absent;
  for (size_t i = 0; i < args.items.size(); ++i) {
    const ConfigValue& child = args.items[i];
    const std::string where_child = args_key + "[" + std::to_string(i) + "]";
    if (child.kind != ConfigValue::Kind::Map) config.fail(args_key, where_child + " must be a mapping {target, args, kwargs}");
    for (const ConfigValue& key_value : child.keys) {
      const std::string key = key_name(key_value);
      if (key != "target" && key != "args" && key != "kwargs")
        config.fail(args_key, where_child + ": unknown key '" + key + "' (expected target, args, kwargs)");
    }
    const ConfigValue* target = child.find("target");
    if (!target || target->kind != ConfigValue::Kind::String || target->text.rfind("torch.nn.", 0) != 0)
      config.fail(args_key, where_child + ": `target` must name a torch.nn module class");
    const std::string class_name = target->text.substr(9);
    const ConfigValue* child_args = child.find("args");
    const ConfigValue* child_kwargs = child.find("kwargs");
    NnModule built = build_nn_module(class_name, child_args ? *child_args : absent,
                                     child_kwargs ? *child_kwargs : absent, config, args_key);
    if (built.forward_params.size() != 1)
      config.fail(args_key, where_child + ": " + class_name + " takes several inputs and cannot be chained");
    sequential->register_module(std::to_string(i), built.module);
    steps.push_back(std::move(built.forward));
  }
  NnModule m;
  m.module = sequential;
  m.forward = [steps](const std::vector<at::Tensor>& x) {
    at::Tensor value = x[0];
    for (const auto& step : steps) value = step({value});
    return value;
  };
  return m;
}

NnModule build_nn_module(const std::string& class_name, const ConfigValue& args, const ConfigValue& kwargs,
                         const Config& config, const std::string& args_key) {
  if (class_name == "Sequential") {
    if (kwargs.kind != ConfigValue::Kind::Null && !(kwargs.kind == ConfigValue::Kind::Map && kwargs.items.empty()))
      config.fail(args_key, "torch.nn.Sequential takes no kwargs");
    return build_sequential(args, config, args_key);
  }
  auto it = nn_classes().find(class_name);
  if (it == nn_classes().end()) {
    const std::string suggestion = closest_match("torch.nn." + class_name, nn_class_names());
    config.fail("target", "torch.nn." + class_name + " is not a supported torch.nn module" +
                              (suggestion.empty() ? "" : " (did you mean '" + suggestion + "'?)"));
  }
  PyArgs bound("torch.nn." + class_name, config, args_key);
  // device/dtype are accepted by every torch.nn constructor; placement is the model's business.
  bound.bind(it->second.params, args, kwargs, {"device", "dtype"});
  NnModule m = it->second.build(bound, config);
  to_float64(*m.module);
  return m;
}

class NnModuleLayer : public Layer {
 public:
  NnModuleLayer(std::string target, NnModule built) : target_(std::move(target)), built_(std::move(built)) {
    register_module("module", built_.module);
  }
  c10::IValue call(const CallArgs& call) override {
    std::vector<at::Tensor> inputs;
    for (const c10::IValue& v : bind_forward(built_.forward_params, call, target_))
      inputs.push_back(as_tensor(v, target_ + " input"));
    return built_.forward(inputs);
  }
  void check_call(size_t n_positional, const std::vector<std::string>& keywords) const override {
    check_forward_shape(built_.forward_params, n_positional, keywords, target_);
  }

 private:
  std::string target_;
  NnModule built_;
};

}  // namespace

int64_t softmax_dim(const at::Tensor& x, std::optional<int64_t> dim) {
  if (dim) return *dim;
  const int64_t d = x.dim();
  return (d == 0 || d == 1 || d == 3) ? 0 : 1;
}

std::vector<std::string> nn_class_names() {
  std::vector<std::string> names{"torch.nn.Sequential"};
  for (const auto& entry : nn_classes()) names.push_back("torch.nn." + entry.first);
  return names;
}

std::shared_ptr<Layer> make_nn_module_layer(const std::string& target, const std::string& class_name,
                                            const Config& config) {
  return std::make_shared<NnModuleLayer>(
      target, build_nn_module(class_name, config.get_value("args"), config.get_value("kwargs"), config, "args"));
}

}  // namespace klay::arbitrary
