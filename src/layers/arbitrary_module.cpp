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
//
// This file resolves `target` to one of those kinds and owns the files a target names; each kind
// lives in its own file: arbitrary_nn_modules (1), arbitrary_operators (2, 3),
// arbitrary_composites (nn.functional compositions), arbitrary_torchscript (4). Config values
// become Python values in arbitrary_values and are bound to signatures in arbitrary_arguments.
#include <dlfcn.h>

#include <cstring>
#include <set>

#include <torch/csrc/jit/runtime/operator.h>

#include "layers/arbitrary_composites.hpp"
#include "layers/arbitrary_nn_modules.hpp"
#include "layers/arbitrary_operators.hpp"
#include "layers/arbitrary_torchscript.hpp"
#include "base/error.hpp"
#include "layers/layer.hpp"

namespace klay {
namespace {

using namespace arbitrary;

// The directory of the YAML file a config came from, for relative `path:` / `library:`.
std::string resolve_relative(const Config& config, const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  const std::string file = config.mark().file ? config.mark().file : "";
  const size_t slash = file.rfind('/');
  return slash == std::string::npos ? path : file.substr(0, slash + 1) + path;
}

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
  for (const std::string& c : composite_names()) names.insert("torch.nn.functional." + c);
  std::vector<std::string> out(names.begin(), names.end());
  for (const std::string& n : nn_class_names()) out.push_back(n);
  return out;
}

[[noreturn]] void unknown_target(const Config& config, const std::string& target, const std::string& detail) {
  const std::string suggestion = closest_match(target, known_function_targets());
  config.fail("target", "unknown target '" + target + "'" + (detail.empty() ? "" : " (" + detail + ")") +
                            (suggestion.empty() ? "" : "; did you mean '" + suggestion + "'?"));
}

std::shared_ptr<Layer> make_arbitrary_module(const Config& config) {
  const std::string target = config.get_string("target");
  auto starts = [&](const char* prefix) { return target.rfind(prefix, 0) == 0; };
  auto no_extra = [&](const char* key, const char* kind) {
    if (config.has(key)) config.fail(key, std::string("`") + key + "` is only used with " + kind + " targets");
  };
  if (target != "torchscript") no_extra("path", "torchscript");
  if (!starts("torch.ops.")) no_extra("library", "torch.ops");

  if (target == "torchscript")
    return make_torchscript_layer(resolve_relative(config, config.get_string("path")), config);

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
    auto layer = make_operator_layer(fn, config);
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
    if (auto composite = make_composite_layer(target, name, config)) return composite;
    FunctionTarget fn = aten_function_target(target, name, true);
    if (torch::jit::getAllOperatorsFor(fn.symbols[0]).empty()) unknown_target(config, target, "");
    return make_operator_layer(fn, config);
  }

  if (starts("torch.nn.")) {
    const std::string class_name = target.substr(9);
    if (class_name.find('.') != std::string::npos) unknown_target(config, target, "");
    return make_nn_module_layer(target, class_name, config);
  }

  if (starts("torch.")) {
    std::string name = target.substr(6);
    // torch.special.X and torch.linalg.X are ATen's special_X and linalg_X.
    for (const char* ns : {"special.", "linalg."})
      if (name.rfind(ns, 0) == 0) name = std::string(ns, std::strlen(ns) - 1) + "_" + name.substr(std::strlen(ns));
    FunctionTarget fn = aten_function_target(target, name, false);
    if (name.find('.') != std::string::npos || torch::jit::getAllOperatorsFor(fn.symbols[0]).empty())
      unknown_target(config, target, "");
    return make_operator_layer(fn, config);
  }
  unknown_target(config, target, "C++ supports torch.nn.*, torch.*, torch.nn.functional.*, torch.ops.*, torchscript");
}

}  // namespace

KLAY_REGISTER_LAYER(ArbitraryModule, make_arbitrary_module, {"*"}, {"*"});

}  // namespace klay
