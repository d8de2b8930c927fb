// ArbitraryModule's operator targets (docs/layers.md#arbitrary-module): ATen and custom
// operators bound by their schemas.
#pragma once
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <ATen/core/interned_strings.h>

#include "layers/config.hpp"
#include "layers/layer.hpp"

namespace klay::arbitrary {

// How a Python function name maps to the operator registry.
struct FunctionTarget {
  std::string python_name;                 // as written, for messages
  std::vector<c10::Symbol> symbols;        // operator names to try, in order
  std::set<std::string> ignored_keywords;  // Python-only arguments (inplace, _stacklevel)
};

// torch.<name> (functional = false) or torch.nn.functional.<name> as an ATen operator name.
FunctionTarget aten_function_target(const std::string& target, const std::string& name, bool functional);

// The layer that calls `fn` with the config's args/kwargs and the call's values; the overload is
// chosen per call shape (Layer::check_call), and none fitting is an error listing every schema.
std::shared_ptr<Layer> make_operator_layer(FunctionTarget fn, const Config& config);

}  // namespace klay::arbitrary
