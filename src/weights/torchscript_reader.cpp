// TorchScript archives (torch.jit.save, `klay export --format torchscript`). libtorch loads them;
// we take each submodule's own parameters then buffers, submodules in definition order, which
// is the order and naming of Python's state_dict().
#include <torch/script.h>

#include "base/error.hpp"
#include "weights/readers.hpp"

namespace klay {

StateDict read_torchscript(const std::string& path) {
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, at::kCPU);
  } catch (const c10::Error& error) {
    throw Error(path + ": cannot load TorchScript archive: " + error.what_without_backtrace());
  } catch (const std::exception& error) {  // the TorchScript parser's ErrorReport, among others
    throw Error(path + ": cannot load TorchScript archive: " + error.what());
  }
  StateDict result;
  result.format = "TorchScript (torch.jit.save)";
  for (const torch::jit::NameModule& named : module.named_modules()) {
    const std::string prefix = named.name.empty() ? "" : named.name + ".";
    for (const torch::jit::NameTensor& parameter : named.value.named_parameters(/*recurse=*/false))
      result.entries.emplace_back(prefix + parameter.name, parameter.value.detach().clone());
    for (const torch::jit::NameTensor& buffer : named.value.named_buffers(/*recurse=*/false))
      result.entries.emplace_back(prefix + buffer.name, buffer.value.detach().clone());
  }
  return result;
}

}  // namespace klay
