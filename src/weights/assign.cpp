#include "weights/assign.hpp"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include "base/error.hpp"

namespace klay {
namespace {

enum class ValueKind { Floating, Integer, Bool, Complex };

ValueKind kind_of(at::ScalarType type) {
  if (type == at::kBool) return ValueKind::Bool;
  if (at::isComplexType(type)) return ValueKind::Complex;
  if (at::isFloatingType(type)) return ValueKind::Floating;
  return ValueKind::Integer;
}

const char* kind_name(ValueKind kind) {
  switch (kind) {
    case ValueKind::Floating: return "floating";
    case ValueKind::Integer: return "integer";
    case ValueKind::Bool: return "bool";
    case ValueKind::Complex: return "complex";
  }
  return "?";
}

std::string shape_text(at::IntArrayRef shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

bool is_ignorable_extra_key(const std::string& name, const at::Tensor& tensor) {
  return ends_with(name, ".output_mask") || name.find("._w3j_") != std::string::npos || tensor.numel() == 0;
}

void assign_state_dict(const StateDict& sd, const std::vector<WeightSlot>& slots, const std::string& source) {
  std::unordered_map<std::string, const at::Tensor*> file;
  for (const auto& [name, tensor] : sd.entries) file[name] = &tensor;

  std::vector<std::string> missing, mismatched_shapes, mismatched_kinds, unequal_aliases, non_finite;
  const char* allow = std::getenv(kAllowNonFiniteVariable);
  const bool allow_non_finite = allow && std::strcmp(allow, "1") == 0;
  std::set<std::string> slot_names;
  // The file value converted to its target's dtype, per slot that passed the checks.
  std::vector<std::pair<at::Tensor, at::Tensor>> writes;
  // First slot name seen for each target tensor, to compare alias duplicates with.
  std::map<const c10::TensorImpl*, std::pair<std::string, at::Tensor>> first_value_of;

  for (const WeightSlot& slot : slots) {
    slot_names.insert(slot.name);
    const auto found = file.find(slot.name);
    if (found == file.end()) {
      missing.push_back(slot.name);
      continue;
    }
    const at::Tensor& value = *found->second;
    const at::Tensor& target = slot.target;
    if (value.sizes() != target.sizes()) {
      mismatched_shapes.push_back(slot.name + " (model " + shape_text(target.sizes()) + ", file " + shape_text(value.sizes()) + ")");
      continue;
    }
    const ValueKind file_kind = kind_of(value.scalar_type()), model_kind = kind_of(target.scalar_type());
    if (file_kind != model_kind) {
      mismatched_kinds.push_back(slot.name + " (model " + kind_name(model_kind) + " " + c10::toString(target.scalar_type()) +
                                 ", file " + kind_name(file_kind) + " " + c10::toString(value.scalar_type()) + ")");
      continue;
    }
    if (file_kind == ValueKind::Floating && !allow_non_finite && !at::isfinite(value).all().item<bool>()) {
      non_finite.push_back(slot.name + " (" + std::to_string(at::isnan(value).sum().item<int64_t>()) + " NaN, " +
                           std::to_string(at::isinf(value).sum().item<int64_t>()) + " Inf of " + std::to_string(value.numel()) +
                           " values)");
      continue;
    }
    const at::Tensor converted = value.to(target.scalar_type());
    if (file_kind == ValueKind::Integer && !at::equal(converted.to(value.scalar_type()), value)) {
      mismatched_kinds.push_back(slot.name + " (file " + c10::toString(value.scalar_type()) + " values do not fit model " +
                                 c10::toString(target.scalar_type()) + ")");
      continue;
    }
    const auto [first, inserted] = first_value_of.emplace(target.unsafeGetTensorImpl(), std::make_pair(slot.name, converted));
    if (!inserted) {
      if (!at::equal(first->second.second, converted))
        unequal_aliases.push_back(first->second.first + " and " + slot.name);
      continue;
    }
    writes.emplace_back(target, converted);
  }

  std::vector<std::string> unexpected;
  for (const auto& [name, tensor] : sd.entries)
    if (!slot_names.count(name) && !is_ignorable_extra_key(name, tensor)) unexpected.push_back(name);

  std::ostringstream problems;
  const auto list = [&problems](const char* heading, const std::vector<std::string>& items) {
    if (items.empty()) return;
    problems << "\n  " << heading << ":";
    for (const std::string& item : items) problems << "\n    " << item;
  };
  list("missing keys", missing);
  list("unexpected keys", unexpected);
  list("shape mismatch", mismatched_shapes);
  list("dtype mismatch", mismatched_kinds);
  list("aliased layers whose duplicated weights differ", unequal_aliases);
  if (!non_finite.empty())
    list((std::string("NaN or Inf values (") + kAllowNonFiniteVariable + "=1 loads them anyway, for debugging)").c_str(),
         non_finite);
  if (!problems.str().empty()) throw Error(source + ": weights do not fit the model:" + problems.str());

  at::NoGradGuard no_grad;
  for (auto& [target, value] : writes) {
    at::Tensor destination = target;
    destination.copy_(value);
  }
}

}  // namespace klay
