// The per-format readers behind load_state_dict (state_dict.cpp detects the format). Internal
// to src/weights; every error is a klay::Error that starts with the file's path.
#pragma once
#include <string>

#include "weights/state_dict.hpp"
#include "weights/zip_archive.hpp"

namespace klay {

// torch.save archive: `<record>/data.pkl` (a pickled OrderedDict of tensors) plus storages in
// `<record>/data/<key>`.
StateDict read_torch_save(const ZipArchive& zip, const std::string& record, const std::string& path);

// TorchScript archive, through torch::jit::load: named parameters and buffers of every submodule.
StateDict read_torchscript(const std::string& path);

// safetensors: u64 header length, JSON header, raw little-endian data.
StateDict read_safetensors(ByteView bytes, const std::string& path);

}  // namespace klay
