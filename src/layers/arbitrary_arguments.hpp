// ArbitraryModule (docs/layers.md#arbitrary-module): Python-style argument binding. Config
// `args`/`kwargs` are bound to a Python signature as Python binds a call (PyArgs, for torch.nn
// constructors); a call's graph values are bound to a forward signature (bind_forward).
#pragma once
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "layers/config.hpp"
#include "layers/layer.hpp"

namespace klay::arbitrary {

// A Python signature: parameter names in order; `required` ones have no default.
struct PyParam {
  const char* name;
  bool required;
};

// A function target's `args` (a list) and `kwargs` (a mapping), each Null when absent; any other
// shape is a config error at that key.
struct ConfigArguments {
  ConfigValue args;
  ConfigValue kwargs;
};
ConfigArguments config_arguments(const Config& config);

// Config arguments bound to Python parameter names. Errors are reported at the config entry
// `args_key` (the layer's `args`, or the Sequential that lists this child).
class PyArgs {
 public:
  PyArgs(std::string callable, const Config& config, std::string args_key);

  // Binds `args` (a list) and `kwargs` (a mapping) to `params`, as Python binds a call; keywords
  // in `ignored` are accepted and dropped. The values must outlive this object.
  void bind(const std::vector<PyParam>& params, const ConfigValue& args, const ConfigValue& kwargs,
            const std::set<std::string>& ignored = {});

  const ConfigValue* get(const std::string& name) const;  // nullptr when unset or null
  int64_t get_int(const std::string& name, int64_t fallback) const;
  int64_t get_int(const std::string& name) const { return get_int(name, 0); }
  double get_double(const std::string& name, double fallback) const;
  bool get_bool(const std::string& name, bool fallback) const;
  std::string get_string(const std::string& name, const std::string& fallback) const;
  std::optional<int64_t> get_optional_int(const std::string& name) const;
  std::vector<int64_t> get_int_list(const std::string& name) const;  // one int or a list of ints

  [[noreturn]] void fail(const std::string& message) const { config_.fail(args_key_, message); }

 private:
  std::string callable_;
  const Config& config_;
  std::string args_key_;
  std::map<std::string, const ConfigValue*> values_;
};

// Binds a call's values to a Python forward signature: positional values in order, keywords by
// name. Throws Error naming `callable` when the call does not fit.
std::vector<c10::IValue> bind_forward(const std::vector<std::string>& params, const CallArgs& call,
                                      const std::string& callable);

// A call of that shape with empty values, to check a shape before any values exist.
CallArgs call_of_shape(size_t n_positional, const std::vector<std::string>& keywords);

// bind_forward's check for a call shape.
void check_forward_shape(const std::vector<std::string>& params, size_t n_positional,
                         const std::vector<std::string>& keywords, const std::string& callable);

// "2 config args + 1 positional input, keywords: x y", for messages about call shapes.
std::string call_shape_text(size_t n_config_args, size_t n_positional, const std::vector<std::string>& keywords);

}  // namespace klay::arbitrary
