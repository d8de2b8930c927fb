// Reading trained weights: torch.save(state_dict) archives (zip + pickled OrderedDict),
// TorchScript archives (klay export / torch.jit.save), and safetensors files.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace klay {

// Named tensors in file order (names as in Python's state_dict, e.g. "conv1.conv.fc.layer0.weight").
struct StateDict {
  std::vector<std::pair<std::string, at::Tensor>> entries;
  // What the file was, for messages and `klay weights`: "torch.save (zip, pickle protocol 2)",
  // "TorchScript (torch.jit.save)" or "safetensors".
  std::string format;
  const at::Tensor* find(const std::string& name) const;
};

// Detects the format from the content; throws klay::Error naming the file and what is wrong
// (truncated zip, unsupported pickle opcode, bad safetensors header, ...).
StateDict load_state_dict(const std::string& path);

}  // namespace klay
