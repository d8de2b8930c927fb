// Loading a shared/conformance case and comparing with its reference.
#pragma once
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "base/json.hpp"

namespace klay::testing {

std::string conformance_dir();

// Agreement bar with Python KLay (float64): norm-wise relative,
//   max|ours - ref| <= 1e-10 * max(1, max|ref|),
// per tensor, with identical shape and dtype. Exact for integer tensors. The max(1, .) keeps
// outputs that are ~0 from demanding an absolute 1e-10 relative to themselves; every reference
// value here is O(1), so this is no looser than the relative bar.
constexpr double kRelativeTolerance = 1e-10;

// "" when they agree, else what differs.
std::string compare(const at::Tensor& ours, const at::Tensor& reference, const std::string& what);

// Reference tensors of an object {name: tensor} in a given order (names from `order`).
std::vector<at::Tensor> tensors_in_order(const json::Value& object, const json::Value& order, const std::string& what);

}  // namespace klay::testing
