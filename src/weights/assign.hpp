// Strict loading of a StateDict into a model's parameters and buffers.
#pragma once
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "weights/state_dict.hpp"

namespace klay {

inline constexpr const char* kAllowNonFiniteVariable = "KLAY_ALLOW_NONFINITE_WEIGHTS";

// One tensor of the model, by its state_dict name. `target` is the module's parameter or buffer
// itself and is written in place. Aliased layers give several slots with the same target.
struct WeightSlot {
  std::string name;
  at::Tensor target;
};

// Copies sd into the slots, or throws one klay::Error (prefixed by `source`, the file) that lists
// every problem: missing keys; unexpected keys; shape mismatches (expected vs found); integer vs
// floating (or bool) kind mismatches; integer values that do not fit the slot's type; alias
// slots whose file values differ. Floating tensors are converted to the slot's dtype. Unexpected
// keys that a model may legitimately lack are ignored: names ending in ".output_mask" or
// containing "._w3j_" (e3nn constants) and tensors with no elements. Floating values that are NaN
// or Inf are refused too, unless the environment sets kAllowNonFiniteVariable to 1 (to debug a
// diverged training). Nothing is written unless everything checks out.
void assign_state_dict(const StateDict& sd, const std::vector<WeightSlot>& slots, const std::string& source);

// Whether an unexpected file key may be ignored (see above).
bool is_ignorable_extra_key(const std::string& name, const at::Tensor& tensor);

}  // namespace klay
