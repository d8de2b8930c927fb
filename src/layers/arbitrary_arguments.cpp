// ArbitraryModule: Python-style binding of config arguments and call values to signatures
// (docs/layers.md#arbitrary-module).
#include "layers/arbitrary_arguments.hpp"

#include <algorithm>

#include "layers/arbitrary_values.hpp"
#include "base/error.hpp"

namespace klay::arbitrary {

using Kind = ConfigValue::Kind;

ConfigArguments config_arguments(const Config& config) {
  ConfigArguments arguments{config.get_value("args"), config.get_value("kwargs")};
  if (arguments.args.kind != Kind::Null && arguments.args.kind != Kind::List)
    config.fail("args", "`args` must be a list");
  if (arguments.kwargs.kind != Kind::Null && arguments.kwargs.kind != Kind::Map)
    config.fail("kwargs", "`kwargs` must be a mapping");
  return arguments;
}

PyArgs::PyArgs(std::string callable, const Config& config, std::string args_key)
    : callable_(std::move(callable)), config_(config), args_key_(std::move(args_key)) {}

void PyArgs::bind(const std::vector<PyParam>& params, const ConfigValue& args, const ConfigValue& kwargs,
                  const std::set<std::string>& ignored) {
  if (args.kind != Kind::Null && args.kind != Kind::List) fail("`args` must be a list");
  if (kwargs.kind != Kind::Null && kwargs.kind != Kind::Map) fail("`kwargs` must be a mapping");
  const size_t n_args = args.items.size();
  if (n_args > params.size())
    fail(callable_ + " takes at most " + std::to_string(params.size()) + " positional arguments, " +
         std::to_string(n_args) + " given");
  for (size_t i = 0; i < n_args; ++i) values_[params[i].name] = &args.items[i];
  for (size_t i = 0; i < kwargs.keys.size(); ++i) {
    const std::string key = key_name(kwargs.keys[i]);
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
    values_[key] = &kwargs.items[i];
  }
  for (const PyParam& p : params)
    if (p.required && !values_.count(p.name))
      fail(callable_ + " missing required argument '" + std::string(p.name) + "'");
}

const ConfigValue* PyArgs::get(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() || it->second->kind == Kind::Null ? nullptr : it->second;
}

int64_t PyArgs::get_int(const std::string& name, int64_t fallback) const {
  const ConfigValue* n = get(name);
  if (!n) return fallback;
  if (n->kind != Kind::Int) fail(callable_ + " argument '" + name + "' must be an int, got " + describe(*n));
  return n->integer;
}

double PyArgs::get_double(const std::string& name, double fallback) const {
  const ConfigValue* n = get(name);
  if (!n) return fallback;
  if (n->kind == Kind::Int) return static_cast<double>(n->integer);
  if (n->kind != Kind::Float) fail(callable_ + " argument '" + name + "' must be a number, got " + describe(*n));
  return n->real;
}

bool PyArgs::get_bool(const std::string& name, bool fallback) const {
  const ConfigValue* n = get(name);
  if (!n) return fallback;
  if (n->kind != Kind::Bool) fail(callable_ + " argument '" + name + "' must be a bool, got " + describe(*n));
  return n->boolean;
}

std::string PyArgs::get_string(const std::string& name, const std::string& fallback) const {
  const ConfigValue* n = get(name);
  if (!n) return fallback;
  if (n->kind != Kind::String) fail(callable_ + " argument '" + name + "' must be a string, got " + describe(*n));
  return n->text;
}

std::optional<int64_t> PyArgs::get_optional_int(const std::string& name) const {
  if (!get(name)) return std::nullopt;
  return get_int(name);
}

std::vector<int64_t> PyArgs::get_int_list(const std::string& name) const {
  const ConfigValue* n = get(name);
  if (n && n->kind == Kind::Int) return {n->integer};
  if (!n || n->kind != Kind::List) fail(callable_ + " argument '" + name + "' must be an int or a list of ints");
  std::vector<int64_t> out;
  for (const ConfigValue& item : n->items) {
    if (item.kind != Kind::Int) fail(callable_ + " argument '" + name + "' must be a list of ints");
    out.push_back(item.integer);
  }
  return out;
}

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

CallArgs call_of_shape(size_t n_positional, const std::vector<std::string>& keywords) {
  CallArgs probe;
  probe.args.resize(n_positional + keywords.size());
  probe.keywords = keywords;
  return probe;
}

void check_forward_shape(const std::vector<std::string>& params, size_t n_positional,
                         const std::vector<std::string>& keywords, const std::string& callable) {
  bind_forward(params, call_of_shape(n_positional, keywords), callable);
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

}  // namespace klay::arbitrary
