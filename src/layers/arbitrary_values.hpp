// ArbitraryModule (docs/layers.md#arbitrary-module): config values as the Python objects a torch
// callable receives — plain values for Python-level functions, schema-typed IValues for ATen
// operators — and the messages that describe them.
#pragma once
#include <string>

#include <ATen/core/ivalue.h>
#include <ATen/core/jit_type.h>

#include "layers/config.hpp"

namespace klay::arbitrary {

// A value as messages show it: null, true, 3, 0.5, 'text', a list, a mapping.
std::string describe(const ConfigValue& value);

// A mapping key as Python sees it (integer keys as their number).
std::string key_name(const ConfigValue& key);

// The Python object a value would be (None, bool, int, float, str, list of numbers); throws
// Error "cannot use ... here" for anything else.
c10::IValue python_value(const ConfigValue& value);

// The IValue an ATen argument of `type` takes, or false with `why`.
bool convert_to_schema_type(const ConfigValue& value, const c10::TypePtr& type, c10::IValue& out, std::string& why);

// A schema type that holds tensors (Tensor, Tensor?, Tensor[], Tensor?[]): filled from the graph.
bool is_tensor_like(const c10::TypePtr& type);

at::Tensor as_tensor(const c10::IValue& value, const std::string& what);

}  // namespace klay::arbitrary
