// ArbitraryModule's operator targets (docs/layers.md#arbitrary-module): torch.<fn>,
// torch.nn.functional.<fn>, torch.special/linalg.<fn> and torch.ops.<ns>.<op>, called through the
// operator registry with config args/kwargs and the graph's values bound by the operator's schema,
// like Python's partial(fn, *args, **kwargs).
#include "layers/arbitrary_operators.hpp"

#include <algorithm>
#include <map>
#include <mutex>

#include <ATen/core/function_schema.h>
#include <torch/csrc/jit/runtime/operator.h>

#include "layers/arbitrary_arguments.hpp"
#include "layers/arbitrary_values.hpp"
#include "base/error.hpp"

namespace klay::arbitrary {
namespace {

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

std::string schema_text(const torch::jit::Operator& op) { return c10::toString(op.schema()); }

// Binds (config args, call positional values, keywords) to one overload, like Python's partial:
// config args first, then the call's positional values. Returns false with a reason on mismatch.
bool bind_overload(const std::shared_ptr<torch::jit::Operator>& op, const FunctionTarget& fn, const ConfigValue& args,
                   const ConfigValue& kwargs, size_t n_positional, const std::vector<std::string>& keywords,
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
    const ConfigValue* value = nullptr;  // from the config, or
    int call_index = -1;                 // from the call
  };
  std::vector<Supplied> positional;
  for (const ConfigValue& arg : args.items) positional.push_back({&arg, -1});
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
      std::all_of(positional.begin(), positional.end(), [](const Supplied& s) { return s.value && s.value->kind == ConfigValue::Kind::Int; });
  if (int_list_varargs) {
    c10::List<int64_t> size;
    for (const Supplied& s : positional) size.push_back(s.value->integer);
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
    if (s.value) {
      std::string reason;
      if (!convert_to_schema_type(*s.value, arguments[a].real_type(), bound.sources[a].constant, reason)) {
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
  for (size_t i = 0; i < kwargs.keys.size(); ++i) {
    const std::string name = key_name(kwargs.keys[i]);
    if (fn.ignored_keywords.count(name)) continue;
    const int a = argument_named(name);
    if (a < 0) {
      why = "unexpected keyword argument '" + name + "'";
      return false;
    }
    if (!take(static_cast<size_t>(a), {&kwargs.items[i], -1})) return false;
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
      : fn_(std::move(fn)), arguments_(config_arguments(config)), config_(config) {
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
      if (bind_overload(op, fn_, arguments_.args, arguments_.kwargs, n_positional, keywords, *bound, why)) {
        if (bound->default_dtype_argument >= 0 && !returns_default_floating(*bound)) bound->default_dtype_argument = -1;
        return *bound_.emplace(key, std::move(bound)).first->second;
      }
      reasons += "\n    " + schema_text(*op) + ": " + why;
    }
    throw Error(where(config_.mark()) + "layer '" + config_.layer_name() + "': " + fn_.python_name +
                ": no overload accepts (" + call_shape_text(arguments_.args.items.size(), n_positional, keywords) +
                "); tried:" +
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
  ConfigArguments arguments_;
  Config config_;
  std::vector<std::shared_ptr<torch::jit::Operator>> overloads_;
  at::ScalarType floating_dtype_ = at::kDouble;
  mutable std::mutex mutex_;
  mutable std::map<std::pair<size_t, std::vector<std::string>>, std::unique_ptr<BoundOperator>> bound_;
};

}  // namespace

std::shared_ptr<Layer> make_operator_layer(FunctionTarget fn, const Config& config) {
  return std::make_shared<OperatorLayer>(std::move(fn), config);
}

FunctionTarget aten_function_target(const std::string& target, const std::string& name, bool functional) {
  FunctionTarget fn;
  fn.python_name = target;
  // nn.functional names that differ from the ATen operator's.
  static const std::map<std::string, std::string> renamed = {{"logsigmoid", "log_sigmoid"}};
  auto it = functional ? renamed.find(name) : renamed.end();
  fn.symbols.push_back(c10::Symbol::aten(it == renamed.end() ? name : it->second));
  if (functional) fn.ignored_keywords = {"inplace", "_stacklevel"};
  return fn;
}

}  // namespace klay::arbitrary
