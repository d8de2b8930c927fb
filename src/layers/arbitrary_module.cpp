// ArbitraryModule (docs/layers.md#arbitrary-module): a torch callable named by its Python import path.
//
// Ports: unrestricted ("*") in and out. Config:
//   target:  the Python path of the callable (see the four kinds below)
//   args:    positional constructor / bound arguments (a YAML list)
//   kwargs:  keyword constructor / bound arguments (a YAML mapping)
//   library: (torch.ops targets) shared library that registers the operator; loaded with dlopen
//   path:    (target: torchscript) the TorchScript archive (torch.jit.save)
// Relative `library` and `path` are taken from the directory of the YAML file.
//
// The four kinds of target:
// 1. torch.nn.<Class>: the libtorch module with Python's parameter names, stored as submodule
//    `module` (state_dict `<layer>.module.weight`, ...). Constructor arguments are bound by the
//    Python parameter names. Sequential takes its children as `args`, a list of
//    {target: torch.nn.X, args: [...], kwargs: {...}} maps; they are named 0, 1, 2, ... as in Python
//    (state_dict `<layer>.module.0.weight`).
// 2. torch.<fn>, torch.nn.functional.<fn>, torch.special.<fn>, torch.linalg.<fn>: the ATen operator
//    of that name from the operator registry, bound by its schema like Python's partial(fn, *args,
//    **kwargs): `args` first, then the graph's positional inputs; keyword arguments and keyword
//    ports by name (Python's `input`/`tensor` is ATen's `self`). `inplace` and `_stacklevel` of
//    nn.functional are accepted and ignored (results are the same out of place). nn.functional
//    functions that are not ATen operators (normalize, softsign, tanhshrink, softmin, dropout*) are
//    implemented here. Factory functions (torch.zeros, ...) without a dtype create the model's
//    floating dtype (float64), as Python does under torch.set_default_dtype(torch.float64).
//    Dropout (module or function) is the identity: inference only.
// 3. torch.ops.<ns>.<op>: a custom operator from `library`, bound by its schema as in 2.
// 4. torchscript: a scripted module loaded from `path`, called with the positional inputs and the
//    keyword ports; its parameters and buffers appear as `<layer>.module.<name>`.
// Unknown targets and arguments that no overload accepts are errors at model build time, with
// the closest known names.
#include <dlfcn.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>

#include <ATen/ATen.h>
#include <ATen/core/function_schema.h>
#include <torch/csrc/jit/runtime/operator.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/script.h>

#include "base/error.hpp"
#include "layers/layer.hpp"

namespace klay {
namespace {

// ---------------------------------------------------------------- YAML values

std::string describe_node(const klay_node* n) {
  if (!n) return "nothing";
  switch (n->kind) {
    case KLAY_NULL: return "null";
    case KLAY_BOOL: return n->boolean ? "true" : "false";
    case KLAY_INT: return std::to_string(n->integer);
    case KLAY_FLOAT: return n->text ? n->text : std::to_string(n->real);
    case KLAY_STRING: return "'" + std::string(n->text) + "'";
    case KLAY_SEQ: return "a list";
    case KLAY_MAP: return "a mapping";
  }
  return "?";
}

std::string map_key(const klay_node* key) {
  return key->kind == KLAY_INT ? std::to_string(key->integer) : std::string(key->text);
}

// A YAML value as the Python object it would be (int, float, bool, str, None, list).
c10::IValue python_value(const klay_node* n) {
  switch (n->kind) {
    case KLAY_NULL: return c10::IValue();
    case KLAY_BOOL: return c10::IValue(n->boolean != 0);
    case KLAY_INT: return c10::IValue(n->integer);
    case KLAY_FLOAT: return c10::IValue(n->real);
    case KLAY_STRING: return c10::IValue(std::string(n->text));
    case KLAY_SEQ: {
      bool all_int = true, all_number = true;
      for (size_t i = 0; i < n->len; ++i) {
        all_int = all_int && n->items[i]->kind == KLAY_INT;
        all_number = all_number && (n->items[i]->kind == KLAY_INT || n->items[i]->kind == KLAY_FLOAT);
      }
      if (all_int) {
        c10::List<int64_t> list;
        for (size_t i = 0; i < n->len; ++i) list.push_back(n->items[i]->integer);
        return list;
      }
      if (all_number) {
        c10::List<double> list;
        for (size_t i = 0; i < n->len; ++i)
          list.push_back(n->items[i]->kind == KLAY_INT ? static_cast<double>(n->items[i]->integer) : n->items[i]->real);
        return list;
      }
      break;
    }
    case KLAY_MAP: break;
  }
  throw Error("cannot use " + describe_node(n) + " here");
}

const std::map<std::string, at::ScalarType>& scalar_type_names() {
  static const std::map<std::string, at::ScalarType> names = {
      {"float64", at::kDouble}, {"double", at::kDouble},   {"float32", at::kFloat},   {"float", at::kFloat},
      {"float16", at::kHalf},   {"half", at::kHalf},       {"bfloat16", at::kBFloat16}, {"int64", at::kLong},
      {"long", at::kLong},      {"int32", at::kInt},       {"int", at::kInt},         {"int16", at::kShort},
      {"short", at::kShort},    {"int8", at::kChar},       {"uint8", at::kByte},      {"bool", at::kBool},
      {"complex64", at::kComplexFloat}, {"cfloat", at::kComplexFloat},
      {"complex128", at::kComplexDouble}, {"cdouble", at::kComplexDouble}};
  return names;
}

std::string strip_torch_prefix(const std::string& s) { return s.rfind("torch.", 0) == 0 ? s.substr(6) : s; }

// Converts a YAML value to the IValue an ATen argument of `type` takes, or explains why not.
bool convert_to_schema_type(const klay_node* n, const c10::TypePtr& type, c10::IValue& out, std::string& why) {
  using c10::TypeKind;
  const TypeKind kind = type->kind();
  if (kind == TypeKind::OptionalType) {
    if (n->kind == KLAY_NULL) {
      out = c10::IValue();
      return true;
    }
    return convert_to_schema_type(n, type->castRaw<c10::OptionalType>()->getElementType(), out, why);
  }
  auto reject = [&](const char* expected) {
    why = "expected " + std::string(expected) + ", got " + describe_node(n);
    return false;
  };
  switch (kind) {
    case TypeKind::IntType:
    case TypeKind::SymIntType:
      if (n->kind == KLAY_INT) out = n->integer;
      else if (n->kind == KLAY_BOOL) out = static_cast<int64_t>(n->boolean);
      else return reject("an int");
      return true;
    case TypeKind::FloatType:
      if (n->kind == KLAY_INT) out = static_cast<double>(n->integer);
      else if (n->kind == KLAY_FLOAT) out = n->real;
      else return reject("a float");
      return true;
    case TypeKind::BoolType:
      if (n->kind != KLAY_BOOL) return reject("a bool");
      out = n->boolean != 0;
      return true;
    case TypeKind::NumberType:
      if (n->kind == KLAY_INT) out = at::Scalar(n->integer);
      else if (n->kind == KLAY_FLOAT) out = at::Scalar(n->real);
      else if (n->kind == KLAY_BOOL) out = at::Scalar(n->boolean != 0);
      else return reject("a number");
      return true;
    case TypeKind::StringType:
      if (n->kind != KLAY_STRING) return reject("a string");
      out = std::string(n->text);
      return true;
    case TypeKind::ScalarTypeType: {
      if (n->kind != KLAY_STRING) return reject("a dtype such as \"torch.float64\"");
      auto it = scalar_type_names().find(strip_torch_prefix(n->text));
      if (it == scalar_type_names().end()) return reject("a dtype such as \"torch.float64\"");
      out = static_cast<int64_t>(it->second);
      return true;
    }
    case TypeKind::LayoutType:
      if (n->kind != KLAY_STRING || strip_torch_prefix(n->text) != "strided") return reject("torch.strided");
      out = static_cast<int64_t>(at::kStrided);
      return true;
    case TypeKind::MemoryFormatType: {
      static const std::map<std::string, at::MemoryFormat> formats = {
          {"contiguous_format", at::MemoryFormat::Contiguous},
          {"preserve_format", at::MemoryFormat::Preserve},
          {"channels_last", at::MemoryFormat::ChannelsLast}};
      auto it = n->kind == KLAY_STRING ? formats.find(strip_torch_prefix(n->text)) : formats.end();
      if (it == formats.end()) return reject("a memory format such as \"torch.contiguous_format\"");
      out = static_cast<int64_t>(it->second);
      return true;
    }
    case TypeKind::DeviceObjType:
      if (n->kind != KLAY_STRING) return reject("a device such as \"cpu\"");
      try {
        out = c10::Device(n->text);
      } catch (const c10::Error&) {
        return reject("a device such as \"cpu\"");
      }
      return true;
    case TypeKind::ListType: {
      const c10::TypePtr element = type->castRaw<c10::ListType>()->getElementType();
      const TypeKind ek = element->kind();
      // Python accepts one int where an int list is expected (e.g. dim=1 for int[1] dim).
      std::vector<const klay_node*> items;
      if (n->kind == KLAY_SEQ) items.assign(n->items, n->items + n->len);
      else if (n->kind == KLAY_INT && (ek == TypeKind::IntType || ek == TypeKind::SymIntType)) items.push_back(n);
      else return reject("a list");
      c10::IValue item;
      if (ek == TypeKind::IntType || ek == TypeKind::SymIntType) {
        c10::List<int64_t> list;
        for (const klay_node* i : items) {
          if (!convert_to_schema_type(i, element, item, why)) return false;
          list.push_back(item.toInt());
        }
        out = list;
      } else if (ek == TypeKind::FloatType) {
        c10::List<double> list;
        for (const klay_node* i : items) {
          if (!convert_to_schema_type(i, element, item, why)) return false;
          list.push_back(item.toDouble());
        }
        out = list;
      } else if (ek == TypeKind::BoolType) {
        c10::List<bool> list;
        for (const klay_node* i : items) {
          if (!convert_to_schema_type(i, element, item, why)) return false;
          list.push_back(item.toBool());
        }
        out = list;
      } else {
        return reject(("a " + type->annotation_str() + " (not expressible in YAML)").c_str());
      }
      return true;
    }
    default:
      return reject((type->annotation_str() + " (not expressible in YAML)").c_str());
  }
}

bool is_tensor_like(const c10::TypePtr& type) {
  c10::TypePtr t = type;
  if (t->kind() == c10::TypeKind::OptionalType) t = t->castRaw<c10::OptionalType>()->getElementType();
  if (t->kind() == c10::TypeKind::ListType) t = t->castRaw<c10::ListType>()->getElementType();
  if (t->kind() == c10::TypeKind::OptionalType) t = t->castRaw<c10::OptionalType>()->getElementType();
  return t->kind() == c10::TypeKind::TensorType;
}

std::string call_shape_text(size_t n_config_args, size_t n_positional, const std::vector<std::string>& keywords) {
  std::string text = std::to_string(n_config_args) + " config args + " + std::to_string(n_positional) +
                     " positional input" + (n_positional == 1 ? "" : "s");
  if (!keywords.empty()) {
    text += ", keywords:";
    for (const auto& k : keywords) text += " " + k;
  }
  return text;
}

// The directory of the YAML file a config came from, for relative `path:` / `library:`.
std::string resolve_relative(const Config& config, const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  const std::string file = config.mark().file ? config.mark().file : "";
  const size_t slash = file.rfind('/');
  return slash == std::string::npos ? path : file.substr(0, slash + 1) + path;
}

at::Tensor as_tensor(const c10::IValue& v, const std::string& what) {
  if (!v.isTensor()) throw Error(what + " must be a tensor, got " + v.tagKind());
  return v.toTensor();
}

// ---------------------------------------------------------------- Python-style argument binding

// A Python signature: parameter names in order; `required` ones have no default.
struct PyParam {
  const char* name;
  bool required;
};

// Arguments bound to Python parameter names, from config args/kwargs (YAML) or call values.
class PyArgs {
 public:
  PyArgs(std::string callable, const Config& config, const std::string& args_key, const std::string& kwargs_key)
      : callable_(std::move(callable)), config_(config), args_key_(args_key) {}

  // Binds YAML `args` (list) and `kwargs` (mapping) to `params`, as Python binds a call.
  void bind_yaml(const std::vector<PyParam>& params, const klay_node* args, const klay_node* kwargs,
                 const std::set<std::string>& ignored = {}) {
    if (args && args->kind != KLAY_NULL && args->kind != KLAY_SEQ) fail("`args` must be a list");
    if (kwargs && kwargs->kind != KLAY_NULL && kwargs->kind != KLAY_MAP) fail("`kwargs` must be a mapping");
    const size_t n_args = args && args->kind == KLAY_SEQ ? args->len : 0;
    if (n_args > params.size())
      fail(callable_ + " takes at most " + std::to_string(params.size()) + " positional arguments, " +
           std::to_string(n_args) + " given");
    for (size_t i = 0; i < n_args; ++i) values_[params[i].name] = args->items[i];
    for (size_t i = 0; kwargs && kwargs->kind == KLAY_MAP && i < kwargs->len; ++i) {
      const std::string key = map_key(kwargs->keys[i]);
      if (ignored.count(key)) continue;
      bool known = false;
      for (const PyParam& p : params) known = known || key == p.name;
      if (!known) {
        std::vector<std::string> names;
        for (const PyParam& p : params) names.emplace_back(p.name);
        const std::string suggestion = closest_match(key, names);
        fail(callable_ + " got an unexpected keyword argument '" + key + "'" +
             (suggestion.empty() ? "" : " (did you mean '" + suggestion + "'?)"));
      }
      if (values_.count(key)) fail(callable_ + " got multiple values for argument '" + key + "'");
      values_[key] = kwargs->items[i];
    }
    for (const PyParam& p : params)
      if (p.required && !values_.count(p.name))
        fail(callable_ + " missing required argument '" + std::string(p.name) + "'");
  }

  const klay_node* get(const std::string& name) const {
    auto it = values_.find(name);
    return it == values_.end() || it->second->kind == KLAY_NULL ? nullptr : it->second;
  }
  int64_t get_int(const std::string& name, int64_t fallback) const {
    const klay_node* n = get(name);
    if (!n) return fallback;
    if (n->kind != KLAY_INT) fail(callable_ + " argument '" + name + "' must be an int, got " + describe_node(n));
    return n->integer;
  }
  int64_t get_int(const std::string& name) const { return get_int(name, 0); }
  double get_double(const std::string& name, double fallback) const {
    const klay_node* n = get(name);
    if (!n) return fallback;
    if (n->kind == KLAY_INT) return static_cast<double>(n->integer);
    if (n->kind != KLAY_FLOAT) fail(callable_ + " argument '" + name + "' must be a number, got " + describe_node(n));
    return n->real;
  }
  bool get_bool(const std::string& name, bool fallback) const {
    const klay_node* n = get(name);
    if (!n) return fallback;
    if (n->kind != KLAY_BOOL) fail(callable_ + " argument '" + name + "' must be a bool, got " + describe_node(n));
    return n->boolean != 0;
  }
  std::string get_string(const std::string& name, const std::string& fallback) const {
    const klay_node* n = get(name);
    if (!n) return fallback;
    if (n->kind != KLAY_STRING) fail(callable_ + " argument '" + name + "' must be a string, got " + describe_node(n));
    return n->text;
  }
  std::optional<int64_t> get_optional_int(const std::string& name) const {
    if (!get(name)) return std::nullopt;
    return get_int(name);
  }
  std::vector<int64_t> get_int_list(const std::string& name) const {
    const klay_node* n = get(name);
    if (n && n->kind == KLAY_INT) return {n->integer};
    if (!n || n->kind != KLAY_SEQ) fail(callable_ + " argument '" + name + "' must be an int or a list of ints");
    std::vector<int64_t> out;
    for (size_t i = 0; i < n->len; ++i) {
      if (n->items[i]->kind != KLAY_INT) fail(callable_ + " argument '" + name + "' must be a list of ints");
      out.push_back(n->items[i]->integer);
    }
    return out;
  }

  [[noreturn]] void fail(const std::string& message) const { config_.fail(args_key_, message); }

 private:
  std::string callable_;
  const Config& config_;
  std::string args_key_;
  std::map<std::string, const klay_node*> values_;
};

// Binds a call's values to a Python forward signature: positional values in order, keywords by name.
std::vector<c10::IValue> bind_forward(const std::vector<std::string>& params, const CallArgs& call,
                                      const std::string& callable) {
  const size_t n_positional = call.args.size() - call.keywords.size();
  std::vector<c10::IValue> bound(params.size());
  std::vector<bool> set(params.size(), false);
  if (n_positional > params.size())
    throw Error(callable + " takes " + std::to_string(params.size()) + " inputs, " + std::to_string(n_positional) +
                " positional given");
  for (size_t i = 0; i < n_positional; ++i) {
    bound[i] = call.args[i];
    set[i] = true;
  }
  for (size_t k = 0; k < call.keywords.size(); ++k) {
    auto it = std::find(params.begin(), params.end(), call.keywords[k]);
    if (it == params.end()) throw Error(callable + " has no input named '" + call.keywords[k] + "'");
    const size_t index = static_cast<size_t>(it - params.begin());
    if (set[index]) throw Error(callable + " got multiple values for input '" + call.keywords[k] + "'");
    bound[index] = call.args[n_positional + k];
    set[index] = true;
  }
  for (size_t i = 0; i < params.size(); ++i)
    if (!set[i]) throw Error(callable + " missing input '" + params[i] + "'");
  return bound;
}

void check_forward_shape(const std::vector<std::string>& params, size_t n_positional,
                         const std::vector<std::string>& keywords, const std::string& callable) {
  CallArgs probe;
  probe.args.resize(n_positional + keywords.size());
  probe.keywords = keywords;
  bind_forward(params, probe, callable);
}

// Floating parameters and buffers of a freshly built libtorch module are float32 (libtorch's
// default dtype); KLay models are float64 (the model casts to float32 later if asked).
void to_float64(torch::nn::Module& module) {
  at::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.scalar_type() == at::kFloat) p.set_data(p.to(at::kDouble));
  for (auto& b : module.buffers())
    if (b.scalar_type() == at::kFloat) b.set_data(b.to(at::kDouble));
}

// ---------------------------------------------------------------- 1. torch.nn classes

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

// Python's legacy implicit softmax dimension (torch.nn.functional._get_softmax_dim).
int64_t softmax_dim(const at::Tensor& x, std::optional<int64_t> dim) {
  if (dim) return *dim;
  const int64_t d = x.dim();
  return (d == 0 || d == 1 || d == 3) ? 0 : 1;
}

NnModule build_nn_module(const std::string& class_name, const klay_node* args, const klay_node* kwargs,
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
NnModule build_sequential(const klay_node* args, const Config& config, const std::string& args_key) {
  if (!args || args->kind != KLAY_SEQ)
    config.fail(args_key, "torch.nn.Sequential takes its children as `args`: a list of {target, args, kwargs}");
  auto sequential = std::make_shared<torch::nn::Module>("Sequential");
  std::vector<std::function<at::Tensor(const std::vector<at::Tensor>&)>> steps;
  for (size_t i = 0; i < args->len; ++i) {
    const klay_node* child = args->items[i];
    const std::string where_child = args_key + "[" + std::to_string(i) + "]";
    if (child->kind != KLAY_MAP) config.fail(args_key, where_child + " must be a mapping {target, args, kwargs}");
    for (size_t k = 0; k < child->len; ++k) {
      const std::string key = map_key(child->keys[k]);
      if (key != "target" && key != "args" && key != "kwargs")
        config.fail(args_key, where_child + ": unknown key '" + key + "' (expected target, args, kwargs)");
    }
    const klay_node* target = klay_map_get(child, "target");
    if (!target || target->kind != KLAY_STRING || std::string(target->text).rfind("torch.nn.", 0) != 0)
      config.fail(args_key, where_child + ": `target` must name a torch.nn module class");
    const std::string class_name = std::string(target->text).substr(9);
    NnModule built = build_nn_module(class_name, klay_map_get(child, "args"), klay_map_get(child, "kwargs"), config,
                                     args_key);
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

std::vector<std::string> nn_class_names() {
  std::vector<std::string> names{"torch.nn.Sequential"};
  for (const auto& entry : nn_classes()) names.push_back("torch.nn." + entry.first);
  return names;
}

NnModule build_nn_module(const std::string& class_name, const klay_node* args, const klay_node* kwargs,
                         const Config& config, const std::string& args_key) {
  if (class_name == "Sequential") {
    if (kwargs && kwargs->kind != KLAY_NULL && !(kwargs->kind == KLAY_MAP && kwargs->len == 0))
      config.fail(args_key, "torch.nn.Sequential takes no kwargs");
    return build_sequential(args, config, args_key);
  }
  auto it = nn_classes().find(class_name);
  if (it == nn_classes().end()) {
    const std::string suggestion = closest_match("torch.nn." + class_name, nn_class_names());
    config.fail("target", "torch.nn." + class_name + " is not a supported torch.nn module" +
                              (suggestion.empty() ? "" : " (did you mean '" + suggestion + "'?)"));
  }
  PyArgs bound("torch.nn." + class_name, config, args_key, "kwargs");
  // device/dtype are accepted by every torch.nn constructor; placement is the model's business.
  bound.bind_yaml(it->second.params, args, kwargs, {"device", "dtype"});
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

// ---------------------------------------------------------------- 2./3. operators by schema

// Where one schema argument's value comes from.
struct ArgumentSource {
  enum class Kind { Constant, Positional, Keyword } kind = Kind::Constant;
  c10::IValue constant;
  size_t index = 0;  // into the call's positional values / keyword values
};

// One resolved overload for one call shape.
struct BoundOperator {
  std::shared_ptr<torch::jit::Operator> op;
  // Calling an Operation is non-const in libtorch although it changes nothing we share.
  mutable torch::jit::Operation operation{nullptr};
  std::vector<ArgumentSource> sources;  // one per schema argument
  int default_dtype_argument = -1;      // a factory's unset `dtype`: the model's floating dtype
};

// How a Python function name maps to the operator registry.
struct FunctionTarget {
  std::string python_name;                 // as written, for messages
  std::vector<c10::Symbol> symbols;        // operator names to try, in order
  std::set<std::string> ignored_keywords;  // Python-only arguments (inplace, _stacklevel)
};

std::string schema_text(const torch::jit::Operator& op) { return c10::toString(op.schema()); }

// Binds (config args, call positional values, keywords) to one overload, like Python's partial:
// config args first, then the call's positional values. Returns false with a reason on mismatch.
bool bind_overload(const std::shared_ptr<torch::jit::Operator>& op, const FunctionTarget& fn, const klay_node* args,
                   const klay_node* kwargs, size_t n_positional, const std::vector<std::string>& keywords,
                   BoundOperator& bound, std::string& why) {
  const c10::FunctionSchema& schema = op->schema();
  if (schema.is_mutable()) {
    why = "in-place or out= variant";
    return false;
  }
  const auto& arguments = schema.arguments();
  size_t n_schema_positional = 0;
  while (n_schema_positional < arguments.size() && !arguments[n_schema_positional].kwarg_only()) ++n_schema_positional;

  struct Supplied {
    const klay_node* node = nullptr;  // from the config, or
    int call_index = -1;              // from the call
  };
  std::vector<Supplied> positional;
  const size_t n_config_args = args && args->kind == KLAY_SEQ ? args->len : 0;
  for (size_t i = 0; i < n_config_args; ++i) positional.push_back({args->items[i], -1});
  for (size_t i = 0; i < n_positional; ++i) positional.push_back({nullptr, static_cast<int>(i)});

  bound = BoundOperator();
  bound.op = op;
  bound.sources.resize(arguments.size());
  std::vector<bool> set(arguments.size(), false);

  // Python lets the one int-list parameter of torch.zeros(*size) & co. take varargs.
  const bool int_list_varargs =
      positional.size() > 1 && n_schema_positional == 1 &&
      arguments[0].real_type()->kind() == c10::TypeKind::ListType &&
      (arguments[0].real_type()->castRaw<c10::ListType>()->getElementType()->kind() == c10::TypeKind::IntType ||
       arguments[0].real_type()->castRaw<c10::ListType>()->getElementType()->kind() == c10::TypeKind::SymIntType) &&
      std::all_of(positional.begin(), positional.end(), [](const Supplied& s) { return s.node && s.node->kind == KLAY_INT; });
  if (int_list_varargs) {
    c10::List<int64_t> size;
    for (const Supplied& s : positional) size.push_back(s.node->integer);
    bound.sources[0].constant = size;
    set[0] = true;
    positional.clear();
  }
  if (positional.size() > n_schema_positional) {
    why = "takes " + std::to_string(n_schema_positional) + " positional arguments, " +
          std::to_string(positional.size()) + " given";
    return false;
  }

  auto argument_named = [&](const std::string& python_name) -> int {
    for (size_t i = 0; i < arguments.size(); ++i)
      if (arguments[i].name() == python_name) return static_cast<int>(i);
    // Python names the first tensor `input` (or `tensor`) where ATen says `self`.
    if (python_name == "input" || python_name == "tensor")
      for (size_t i = 0; i < arguments.size(); ++i)
        if (arguments[i].name() == "self") return static_cast<int>(i);
    return -1;
  };
  auto take = [&](size_t a, const Supplied& s) -> bool {
    if (set[a]) {
      why = "got multiple values for argument '" + arguments[a].name() + "'";
      return false;
    }
    set[a] = true;
    if (s.node) {
      std::string reason;
      if (!convert_to_schema_type(s.node, arguments[a].real_type(), bound.sources[a].constant, reason)) {
        why = "argument '" + arguments[a].name() + "': " + reason;
        return false;
      }
      bound.sources[a].kind = ArgumentSource::Kind::Constant;
      return true;
    }
    if (!is_tensor_like(arguments[a].type())) {
      why = "an input would bind to '" + arguments[a].name() + "' of type " + arguments[a].type()->annotation_str();
      return false;
    }
    return true;
  };

  for (size_t i = 0; i < positional.size(); ++i) {
    if (positional[i].call_index >= 0) {
      bound.sources[i].kind = ArgumentSource::Kind::Positional;
      bound.sources[i].index = static_cast<size_t>(positional[i].call_index);
    }
    if (!take(i, positional[i])) return false;
  }
  for (size_t i = 0; kwargs && kwargs->kind == KLAY_MAP && i < kwargs->len; ++i) {
    const std::string name = map_key(kwargs->keys[i]);
    if (fn.ignored_keywords.count(name)) continue;
    const int a = argument_named(name);
    if (a < 0) {
      why = "unexpected keyword argument '" + name + "'";
      return false;
    }
    if (!take(static_cast<size_t>(a), {kwargs->items[i], -1})) return false;
  }
  for (size_t k = 0; k < keywords.size(); ++k) {
    if (fn.ignored_keywords.count(keywords[k])) {
      why = "keyword input '" + keywords[k] + "' cannot be a tensor";
      return false;
    }
    const int a = argument_named(keywords[k]);
    if (a < 0) {
      why = "unexpected keyword input '" + keywords[k] + "'";
      return false;
    }
    bound.sources[a].kind = ArgumentSource::Kind::Keyword;
    bound.sources[a].index = k;
    if (!take(static_cast<size_t>(a), {nullptr, static_cast<int>(k)})) return false;
  }

  bool has_tensor_argument = false;
  for (const auto& argument : arguments) has_tensor_argument = has_tensor_argument || is_tensor_like(argument.type());
  for (size_t a = 0; a < arguments.size(); ++a) {
    if (set[a]) continue;
    if (!arguments[a].default_value()) {
      why = "missing argument '" + arguments[a].name() + "'";
      return false;
    }
    bound.sources[a].constant = *arguments[a].default_value();
    if (!has_tensor_argument && arguments[a].name() == "dtype" &&
        arguments[a].real_type()->kind() == c10::TypeKind::OptionalType)
      bound.default_dtype_argument = static_cast<int>(a);
  }
  bound.operation = op->getOperation();
  return true;
}

class OperatorLayer : public Layer {
 public:
  OperatorLayer(FunctionTarget fn, const Config& config)
      : fn_(std::move(fn)), args_(config.raw("args")), kwargs_(config.raw("kwargs")), config_(config) {
    if (args_ && args_->kind != KLAY_NULL && args_->kind != KLAY_SEQ) config.fail("args", "`args` must be a list");
    if (kwargs_ && kwargs_->kind != KLAY_NULL && kwargs_->kind != KLAY_MAP)
      config.fail("kwargs", "`kwargs` must be a mapping");
    for (const c10::Symbol& symbol : fn_.symbols)
      for (const auto& op : torch::jit::getAllOperatorsFor(symbol)) overloads_.push_back(op);
  }

  void check_call(size_t n_positional, const std::vector<std::string>& keywords) const override {
    bound_for(n_positional, keywords);
  }

  void set_floating_dtype(at::ScalarType dtype) override { floating_dtype_ = dtype; }

  c10::IValue call(const CallArgs& call) override {
    const size_t n_positional = call.args.size() - call.keywords.size();
    const BoundOperator& bound = bound_for(n_positional, call.keywords);
    torch::jit::Stack stack;
    stack.reserve(bound.sources.size());
    for (size_t a = 0; a < bound.sources.size(); ++a) {
      const ArgumentSource& s = bound.sources[a];
      switch (s.kind) {
        case ArgumentSource::Kind::Constant:
          stack.push_back(static_cast<int>(a) == bound.default_dtype_argument
                              ? c10::IValue(static_cast<int64_t>(floating_dtype_))
                              : s.constant);
          break;
        case ArgumentSource::Kind::Positional: stack.push_back(call.args[s.index]); break;
        case ArgumentSource::Kind::Keyword: stack.push_back(call.args[n_positional + s.index]); break;
      }
    }
    bound.operation(stack);
    if (stack.size() == 1) return std::move(stack[0]);
    if (stack.empty()) return c10::IValue();
    return c10::ivalue::Tuple::create(std::move(stack));
  }

 private:
  const BoundOperator& bound_for(size_t n_positional, const std::vector<std::string>& keywords) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto key = std::make_pair(n_positional, keywords);
    auto it = bound_.find(key);
    if (it != bound_.end()) return *it->second;
    auto bound = std::make_unique<BoundOperator>();
    std::string reasons;
    for (const auto& op : overloads_) {
      std::string why;
      if (bind_overload(op, fn_, args_, kwargs_, n_positional, keywords, *bound, why)) {
        if (bound->default_dtype_argument >= 0 && !returns_default_floating(*bound)) bound->default_dtype_argument = -1;
        return *bound_.emplace(key, std::move(bound)).first->second;
      }
      reasons += "\n    " + schema_text(*op) + ": " + why;
    }
    const size_t n_config_args = args_ && args_->kind == KLAY_SEQ ? args_->len : 0;
    throw Error(where(config_.mark()) + "layer '" + config_.layer_name() + "': " + fn_.python_name +
                ": no overload accepts (" + call_shape_text(n_config_args, n_positional, keywords) + "); tried:" +
                reasons);
  }

  // Python creates floating tensors in its default dtype (float64 for KLay); ATen's default is
  // float32. A factory left without dtype gets the model's floating dtype only if ATen would have
  // used its floating default (torch.arange(5) stays int64). Runs the factory once at build time.
  static bool returns_default_floating(const BoundOperator& bound) {
    torch::jit::Stack stack;
    for (const ArgumentSource& s : bound.sources) stack.push_back(s.constant);
    bound.operation(stack);
    return stack.size() == 1 && stack[0].isTensor() && stack[0].toTensor().scalar_type() == at::kFloat;
  }

  FunctionTarget fn_;
  const klay_node* args_;
  const klay_node* kwargs_;
  Config config_;
  std::vector<std::shared_ptr<torch::jit::Operator>> overloads_;
  at::ScalarType floating_dtype_ = at::kDouble;
  mutable std::mutex mutex_;
  mutable std::map<std::pair<size_t, std::vector<std::string>>, std::unique_ptr<BoundOperator>> bound_;
};

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
    const klay_node* args = config.raw("args");
    const klay_node* kwargs = config.raw("kwargs");
    if (args && args->kind != KLAY_NULL && args->kind != KLAY_SEQ) config.fail("args", "`args` must be a list");
    if (kwargs && kwargs->kind != KLAY_NULL && kwargs->kind != KLAY_MAP) config.fail("kwargs", "`kwargs` must be a mapping");
    try {
      for (size_t i = 0; args && args->kind == KLAY_SEQ && i < args->len; ++i) bound_args_.push_back(python_value(args->items[i]));
      for (size_t i = 0; kwargs && kwargs->kind == KLAY_MAP && i < kwargs->len; ++i)
        bound_kwargs_.emplace_back(map_key(kwargs->keys[i]), python_value(kwargs->items[i]));
    } catch (const Error& e) {
      config.fail("args", python_name_ + ": " + e.what());
    }
  }
  void check_call(size_t n_positional, const std::vector<std::string>& keywords) const override {
    CallArgs probe;
    probe.args.resize(n_positional + keywords.size());
    probe.keywords = keywords;
    bind(probe);
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

// ---------------------------------------------------------------- 4. TorchScript modules

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

// ---------------------------------------------------------------- the factory

// Every function target a user can write, for "did you mean" (torch.X, torch.nn.functional.X).
std::vector<std::string> known_function_targets() {
  std::set<std::string> names;
  for (const auto& op : torch::jit::getAllOperators()) {
    const std::string qualified = op->schema().name();
    if (qualified.rfind("aten::", 0) != 0 || qualified.find("._") != std::string::npos) continue;
    const std::string name = qualified.substr(6);
    if (name.empty() || name[0] == '_' || name.back() == '_') continue;
    names.insert("torch." + name);
    names.insert("torch.nn.functional." + name);
  }
  for (const auto& c : composites()) names.insert("torch.nn.functional." + c.first);
  std::vector<std::string> out(names.begin(), names.end());
  for (const std::string& n : nn_class_names()) out.push_back(n);
  return out;
}

[[noreturn]] void unknown_target(const Config& config, const std::string& target, const std::string& detail) {
  const std::string suggestion = closest_match(target, known_function_targets());
  config.fail("target", "unknown target '" + target + "'" + (detail.empty() ? "" : " (" + detail + ")") +
                            (suggestion.empty() ? "" : "; did you mean '" + suggestion + "'?"));
}

FunctionTarget function_target(const std::string& target, const std::string& name, bool functional) {
  FunctionTarget fn;
  fn.python_name = target;
  // nn.functional names that differ from the ATen operator's.
  static const std::map<std::string, std::string> renamed = {{"logsigmoid", "log_sigmoid"}};
  auto it = functional ? renamed.find(name) : renamed.end();
  fn.symbols.push_back(c10::Symbol::aten(it == renamed.end() ? name : it->second));
  if (functional) fn.ignored_keywords = {"inplace", "_stacklevel"};
  return fn;
}

std::shared_ptr<Layer> make_arbitrary_module(const Config& config) {
  config.reject_unknown_keys({"target", "args", "kwargs", "library", "path"});
  const std::string target = config.get_string("target");
  auto starts = [&](const char* prefix) { return target.rfind(prefix, 0) == 0; };
  auto no_extra = [&](const char* key, const char* kind) {
    if (config.has(key)) config.fail(key, std::string("`") + key + "` is only used with " + kind + " targets");
  };
  if (target != "torchscript") no_extra("path", "torchscript");
  if (!starts("torch.ops.")) no_extra("library", "torch.ops");

  if (target == "torchscript")
    return std::make_shared<ScriptModuleLayer>(resolve_relative(config, config.get_string("path")), config);

  if (starts("torch.ops.")) {
    // torch.ops.<ns>.<op>[.<overload>]
    const std::string rest = target.substr(10);
    const size_t dot = rest.find('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == rest.size())
      config.fail("target", "expected torch.ops.<namespace>.<operator>, got '" + target + "'");
    if (config.has("library")) {
      const std::string library = resolve_relative(config, config.get_string("library"));
      if (!dlopen(library.c_str(), RTLD_NOW | RTLD_GLOBAL))
        config.fail("library", "cannot load '" + library + "': " + dlerror());
    }
    std::string op_name = rest.substr(dot + 1);
    std::string overload;
    if (const size_t odot = op_name.find('.'); odot != std::string::npos) {
      overload = op_name.substr(odot + 1);
      op_name = op_name.substr(0, odot);
    }
    FunctionTarget fn;
    fn.python_name = target;
    fn.symbols.push_back(c10::Symbol::fromQualString(rest.substr(0, dot) + "::" + op_name));
    auto layer = std::make_shared<OperatorLayer>(fn, config);
    const auto& ops = torch::jit::getAllOperatorsFor(fn.symbols[0]);
    bool found = false;
    for (const auto& op : ops) found = found || overload.empty() || op->schema().overload_name() == overload;
    if (!found) {
      std::vector<std::string> names;
      for (const auto& op : torch::jit::getAllOperators())
        if (op->schema().name().rfind(rest.substr(0, dot) + "::", 0) == 0)
          names.push_back("torch.ops." + rest.substr(0, dot) + "." + op->schema().name().substr(dot + 2));
      const std::string suggestion = closest_match(target, names);
      config.fail("target", "operator '" + target + "' is not registered" +
                                (config.has("library") ? " by the library" : " (name its shared library in `library:`)") +
                                (suggestion.empty() ? "" : "; did you mean '" + suggestion + "'?"));
    }
    return layer;
  }

  if (starts("torch.nn.functional.")) {
    const std::string name = target.substr(20);
    auto composite = composites().find(name);
    if (composite != composites().end()) return std::make_shared<CompositeLayer>(target, composite->second, config);
    FunctionTarget fn = function_target(target, name, true);
    if (torch::jit::getAllOperatorsFor(fn.symbols[0]).empty()) unknown_target(config, target, "");
    return std::make_shared<OperatorLayer>(fn, config);
  }

  if (starts("torch.nn.")) {
    const std::string class_name = target.substr(9);
    if (class_name.find('.') != std::string::npos) unknown_target(config, target, "");
    return std::make_shared<NnModuleLayer>(
        target, build_nn_module(class_name, config.raw("args"), config.raw("kwargs"), config, "args"));
  }

  if (starts("torch.")) {
    std::string name = target.substr(6);
    // torch.special.X and torch.linalg.X are ATen's special_X and linalg_X.
    for (const char* ns : {"special.", "linalg."})
      if (name.rfind(ns, 0) == 0) name = std::string(ns, std::strlen(ns) - 1) + "_" + name.substr(std::strlen(ns));
    FunctionTarget fn = function_target(target, name, false);
    if (name.find('.') != std::string::npos || torch::jit::getAllOperatorsFor(fn.symbols[0]).empty())
      unknown_target(config, target, "");
    return std::make_shared<OperatorLayer>(fn, config);
  }
  unknown_target(config, target, "C++ supports torch.nn.*, torch.*, torch.nn.functional.*, torch.ops.*, torchscript");
}

}  // namespace

KLAY_REGISTER_LAYER(ArbitraryModule, make_arbitrary_module);

}  // namespace klay
