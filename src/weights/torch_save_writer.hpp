// Writing weights the way KLay ships them: torch.save(model.state_dict()) as torch 1.13 writes
// it, so that Python's torch.load, KLay and our own reader (torch_save_reader.cpp) all read it.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace klay {

// Writes `entries` (name -> CPU tensor, in order; repeated tensors such as an alias's duplicate
// names are fine) to `path` as a zip archive of stored entries, each entry's data 64-byte aligned:
//   archive/data.pkl   pickle protocol 2: collections.OrderedDict of
//                      torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())
//   archive/data/<k>   the raw little-endian bytes of storage k (tensors sharing a storage share k)
//   archive/version    "3\n"
// The OrderedDict carries no `_metadata` attribute (torch.load and load_state_dict do not need it).
// Throws klay::Error naming the file when it cannot be written or a tensor cannot be represented.
void write_torch_save(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& entries);

}  // namespace klay
