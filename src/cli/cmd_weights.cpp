// `klay weights FILE`: what a weights file holds (any format load_state_dict reads), one line per
// tensor with a short value summary, so a user can check a file before handing it to a model.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/commands.hpp"
#include "base/error.hpp"
#include "weights/assign.hpp"
#include "weights/state_dict.hpp"

namespace {

// Python's names, which is what users see in their training code.
std::string python_dtype(at::ScalarType type) {
  switch (type) {
    case at::kDouble: return "float64";
    case at::kFloat: return "float32";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return c10::toString(type);
  }
}

std::string shape_text(at::IntArrayRef shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

std::string number_text(double value, bool integral) {
  char text[32];
  std::snprintf(text, sizeof text, integral ? "%.0f" : "%.6g", value);
  return text;
}

// All values when there are few, else min / max (and mean for floating types).
std::string value_summary(const at::Tensor& tensor) {
  constexpr int64_t kListedValues = 6;
  if (tensor.numel() == 0) return "(empty)";
  const bool integral = !at::isFloatingType(tensor.scalar_type());
  const at::Tensor values = tensor.to(at::kDouble).contiguous().view({-1});
  if (values.numel() <= kListedValues) {
    std::string text;
    const double* data = values.data_ptr<double>();
    for (int64_t i = 0; i < values.numel(); ++i) text += (i ? " " : "") + number_text(data[i], integral);
    return text;
  }
  std::string text = "min " + number_text(values.min().item<double>(), integral) + "  max " +
                     number_text(values.max().item<double>(), integral);
  if (!integral) text += "  mean " + number_text(values.mean().item<double>(), false);
  return text;
}

}  // namespace

int cmd_weights(int argc, char** argv) {
  if (argc != 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fprintf(argc == 2 ? stdout : stderr,
                 "usage: klay weights FILE\n"
                 "  Lists every tensor of a weights file (torch.save state_dict, TorchScript archive or\n"
                 "  safetensors): name, dtype, shape, number of values and a value summary.\n");
    return argc == 2 ? 0 : 2;
  }
  klay::StateDict sd;
  try {
    sd = klay::load_state_dict(argv[1]);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "klay weights: error: %s\n", klay::exception_message(error).c_str());
    return 1;
  }

  size_t name_width = 4, shape_width = 5;
  for (const auto& [name, tensor] : sd.entries) {
    name_width = std::max(name_width, name.size());
    shape_width = std::max(shape_width, shape_text(tensor.sizes()).size());
  }
  std::printf("%s\nformat: %s\n\n", argv[1], sd.format.c_str());
  std::printf("%-*s  %-8s  %-*s  %8s  %s\n", int(name_width), "name", "dtype", int(shape_width), "shape", "numel", "values");
  int64_t total = 0, constants = 0;
  for (const auto& [name, tensor] : sd.entries) {
    std::printf("%-*s  %-8s  %-*s  %8lld  %s\n", int(name_width), name.c_str(), python_dtype(tensor.scalar_type()).c_str(),
                int(shape_width), shape_text(tensor.sizes()).c_str(), static_cast<long long>(tensor.numel()),
                value_summary(tensor).c_str());
    total += tensor.numel();
    if (klay::is_ignorable_extra_key(name, tensor)) constants += tensor.numel();
  }
  std::printf("\n%zu tensors, %lld values in total (%lld of them in e3nn constants and output masks)\n", sd.entries.size(),
              static_cast<long long>(total), static_cast<long long>(constants));
  return 0;
}
