#include "conformance_case.hpp"

#include <sstream>

namespace klay::testing {

std::string conformance_dir() { return KLAY_CONFORMANCE_DIR; }

std::string compare(const at::Tensor& ours, const at::Tensor& reference, const std::string& what) {
  std::ostringstream why;
  if (!ours.defined()) return what + ": undefined";
  if (ours.sizes() != reference.sizes()) {
    why << what << ": shape " << ours.sizes() << " but reference " << reference.sizes();
    return why.str();
  }
  if (ours.scalar_type() != reference.scalar_type()) {
    why << what << ": dtype " << ours.scalar_type() << " but reference " << reference.scalar_type();
    return why.str();
  }
  if (!at::isFloatingType(reference.scalar_type())) {
    if (!at::equal(ours, reference)) return what + ": integer values differ";
    return "";
  }
  const at::Tensor a = ours.detach().to(at::kDouble), b = reference.to(at::kDouble);
  if (b.numel() == 0) return "";
  const double scale = std::max(1.0, b.abs().max().item<double>());
  const double error = (a - b).abs().max().item<double>();
  if (!(error <= kRelativeTolerance * scale)) {  // also catches NaN
    why << what << ": max|diff| = " << error << " > " << kRelativeTolerance << " * " << scale;
    return why.str();
  }
  return "";
}

std::vector<at::Tensor> tensors_in_order(const json::Value& object, const json::Value& order, const std::string& what) {
  std::vector<at::Tensor> out;
  for (const json::Value& name : order.items) {
    const json::Value* value = object.find(name.text);
    if (!value) throw std::runtime_error(what + ": no entry '" + name.text + "'");
    out.push_back(json::to_tensor(*value, what + " '" + name.text + "'"));
  }
  return out;
}

}  // namespace klay::testing
