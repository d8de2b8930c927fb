// Format detection for load_state_dict. Every supported file is read whole: weights are small
// next to the memory a model run needs.
#include "weights/state_dict.hpp"

#include <c10/util/Exception.h>

#include "base/error.hpp"
#include "base/files.hpp"
#include "weights/readers.hpp"

namespace klay {
namespace {

bool starts_with(const std::string& text, const std::string& prefix) { return text.compare(0, prefix.size(), prefix) == 0; }

// The archive's single top-level folder ("archive", or the file's stem for torch.save).
std::string record_folder(const ZipArchive& zip, const std::string& path) {
  std::string folder;
  for (const ZipArchive::Entry& entry : zip.entries()) {
    const size_t slash = entry.name.find('/');
    if (slash == std::string::npos || (!folder.empty() && entry.name.compare(0, slash, folder) != 0))
      throw Error(path + ": zip archive is not a PyTorch archive (entries outside one top-level folder: '" + entry.name + "')");
    folder = entry.name.substr(0, slash);
  }
  if (folder.empty()) throw Error(path + ": zip archive is empty");
  return folder;
}

// A header length within the format's limit followed by '{'. The length is not checked against
// the file size here, so that a truncated file is reported as such by the reader.
bool looks_like_safetensors(ByteView bytes) {
  constexpr uint64_t kMaxHeaderSize = 100000000;  // the reference implementation's limit
  if (bytes.size < 10) return false;
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes.data[i];
  return header_size >= 2 && header_size <= kMaxHeaderSize && bytes.data[8] == '{';
}

StateDict read_any_format(const std::string& path) {
  const std::string content = read_whole_file(path, "weights file");
  const ByteView bytes{reinterpret_cast<const uint8_t*>(content.data()), content.size()};
  if (bytes.size >= 4 && bytes.data[0] == 'P' && bytes.data[1] == 'K' && bytes.data[2] == 3 && bytes.data[3] == 4) {
    const ZipArchive zip(bytes, path);
    const std::string record = record_folder(zip, path);
    bool torchscript = zip.find(record + "/constants.pkl") != nullptr;
    for (const ZipArchive::Entry& entry : zip.entries()) torchscript = torchscript || starts_with(entry.name, record + "/code/");
    if (!torchscript) return read_torch_save(zip, record, path);
    // libtorch's own reader takes over. It does not check CRCs, so we check the stored entries,
    // which hold every tensor and pickle; only the deflated code files are left to its parser.
    for (const ZipArchive::Entry& entry : zip.entries())
      if (entry.method == 0) zip.read(entry);
    return read_torchscript(path);
  }
  if (looks_like_safetensors(bytes)) return read_safetensors(bytes, path);
  if (bytes.size >= 2 && bytes.data[0] == 0x80 && bytes.data[1] <= 5)
    throw Error(path + ": legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it with a current "
                "torch.save (zip format) or as safetensors");
  throw Error(path + ": unrecognized weights format (expected a torch.save zip archive, a TorchScript archive or a "
              "safetensors file)");
}

}  // namespace

const at::Tensor* StateDict::find(const std::string& name) const {
  for (const auto& [key, tensor] : entries)
    if (key == name) return &tensor;
  return nullptr;
}

StateDict load_state_dict(const std::string& path) {
  try {
    return read_any_format(path);
  } catch (const c10::Error& error) {  // e.g. a tensor too large to allocate
    throw Error(path + ": " + error.what_without_backtrace());
  }
}

}  // namespace klay
