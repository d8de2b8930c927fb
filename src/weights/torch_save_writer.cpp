// torch.save writer: the pickle is emitted with the opcodes CPython's protocol-2 pickler uses for
// a state_dict (see torch_save_reader.cpp for the reading side), the archive with the layout of
// PyTorch's miniz writer (stored entries whose data starts on a 64-byte boundary, padded by an
// "FB" extra field), so that storages can be memory-mapped by readers that want to.
#include "weights/torch_save_writer.hpp"

#include <ATen/ATen.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>

#include "base/error.hpp"
#include "weights/zip_archive.hpp"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "torch.save storages are little-endian; a big-endian host would need byte swapping here"
#endif

namespace klay {
namespace {

// The record folder torch.save uses when it writes to a stream.
constexpr const char* kRecord = "archive";
constexpr size_t kAlignment = 64;
constexpr size_t kSetItemsBatch = 1000;  // CPython's pickler batches SETITEMS like this

const char* storage_class(at::ScalarType dtype) {
  switch (dtype) {
    case at::kDouble: return "DoubleStorage";
    case at::kFloat: return "FloatStorage";
    case at::kHalf: return "HalfStorage";
    case at::kBFloat16: return "BFloat16Storage";
    case at::kLong: return "LongStorage";
    case at::kInt: return "IntStorage";
    case at::kShort: return "ShortStorage";
    case at::kChar: return "CharStorage";
    case at::kByte: return "ByteStorage";
    case at::kBool: return "BoolStorage";
    default: return nullptr;
  }
}

void put_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

class Pickler {
 public:
  Pickler() { out_ += "\x80\x02"; }  // PROTO 2

  std::string& bytes() { return out_; }

  void op(char opcode) { out_.push_back(opcode); }

  void integer(int64_t value) {
    if (value >= 0 && value < 256) {
      op('K');  // BININT1
      put_le(out_, uint64_t(value), 1);
    } else if (value >= 0 && value < 65536) {
      op('M');  // BININT2
      put_le(out_, uint64_t(value), 2);
    } else if (value >= INT32_MIN && value <= INT32_MAX) {
      op('J');  // BININT
      put_le(out_, uint64_t(value), 4);
    } else {
      op('\x8a');  // LONG1, 8 bytes two's complement
      put_le(out_, 8, 1);
      put_le(out_, uint64_t(value), 8);
    }
  }

  void string(const std::string& text) {
    op('X');  // BINUNICODE
    put_le(out_, text.size(), 4);
    out_ += text;
  }

  // Globals and repeated strings are pickled once and fetched from the memo afterwards, as
  // CPython does for objects it has seen.
  void global(const std::string& module, const std::string& name) {
    if (fetch("c" + module + "." + name)) return;
    out_ += "c" + module + "\n" + name + "\n";
    remember("c" + module + "." + name);
  }

  void memoized_string(const std::string& text) {
    if (fetch("s" + text)) return;
    string(text);
    remember("s" + text);
  }

  void int_tuple(at::IntArrayRef values) {
    if (values.empty()) return op(')');  // EMPTY_TUPLE
    if (values.size() > 3) op('(');      // MARK
    for (int64_t v : values) integer(v);
    op(values.size() > 3 ? 't' : static_cast<char>(0x84 + values.size()));  // TUPLE or TUPLE1..3
  }

 private:
  bool fetch(const std::string& key) {
    const auto found = memo_.find(key);
    if (found == memo_.end()) return false;
    if (found->second < 256) {
      op('h');  // BINGET
      put_le(out_, found->second, 1);
    } else {
      op('j');  // LONG_BINGET
      put_le(out_, found->second, 4);
    }
    return true;
  }

  void remember(const std::string& key) {
    const uint32_t index = static_cast<uint32_t>(memo_.size());
    memo_.emplace(key, index);
    if (index < 256) {
      op('q');  // BINPUT
      put_le(out_, index, 1);
    } else {
      op('r');  // LONG_BINPUT
      put_le(out_, index, 4);
    }
  }

  std::string out_;
  std::map<std::string, uint32_t> memo_;
};

struct Record {
  std::string name;
  const uint8_t* data;
  size_t size;
};

// A zip of stored entries; sizes beyond the classic format's 32 bits are refused (state_dicts of
// KLay models are far below 4 GiB).
std::string zip_of(const std::vector<Record>& records, const std::string& path) {
  std::string zip, directory;
  const auto check_32bit = [&](uint64_t value) {
    if (value >= 0xFFFFFFFFu) throw Error(path + ": weights larger than 4 GiB cannot be written");
    return value;
  };
  for (const Record& record : records) {
    const uint64_t header_offset = check_32bit(zip.size());
    const uint32_t crc = crc32(ByteView{record.data, record.size});
    const size_t unpadded = zip.size() + 30 + record.name.size() + 4;
    const size_t padding = (kAlignment - unpadded % kAlignment) % kAlignment;
    const auto common = [&](std::string& out) {
      put_le(out, 20, 2);  // version needed to extract: 2.0
      put_le(out, 0, 2);   // flags
      put_le(out, 0, 2);   // method: stored
      put_le(out, 0, 4);   // time and date: zero, as torch writes, so files are reproducible
      put_le(out, crc, 4);
      put_le(out, check_32bit(record.size), 4);
      put_le(out, record.size, 4);
      put_le(out, record.name.size(), 2);
    };
    put_le(zip, 0x04034b50, 4);
    common(zip);
    put_le(zip, 4 + padding, 2);
    zip += record.name;
    zip += "FB";
    put_le(zip, padding, 2);
    zip.append(padding, 'Z');
    if (record.size > 0) zip.append(reinterpret_cast<const char*>(record.data), record.size);

    put_le(directory, 0x02014b50, 4);
    put_le(directory, 20, 2);  // version made by
    common(directory);
    put_le(directory, 0, 2);  // extra field length
    put_le(directory, 0, 2);  // comment length
    put_le(directory, 0, 2);  // disk number
    put_le(directory, 0, 2);  // internal attributes
    put_le(directory, 0, 4);  // external attributes
    put_le(directory, header_offset, 4);
    directory += record.name;
  }
  const uint64_t directory_offset = check_32bit(zip.size());
  zip += directory;
  put_le(zip, 0x06054b50, 4);
  put_le(zip, 0, 2);  // this disk
  put_le(zip, 0, 2);  // disk with the directory
  put_le(zip, records.size(), 2);
  put_le(zip, records.size(), 2);
  put_le(zip, check_32bit(directory.size()), 4);
  put_le(zip, directory_offset, 4);
  put_le(zip, 0, 2);  // comment length
  return zip;
}

}  // namespace

void write_torch_save(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& entries) {
  if (entries.size() > 0xFFFF - 2) throw Error(path + ": too many tensors for one archive");
  // Storage keys in order of first use, as torch.save numbers them; shared storages share a key.
  std::map<const c10::StorageImpl*, std::string> key_of;
  std::vector<at::Tensor> storages;  // one tensor per key, for its storage and dtype
  Pickler pickle;
  pickle.global("collections", "OrderedDict");
  pickle.op(')');
  pickle.op('R');
  for (size_t begin = 0; begin < entries.size(); begin += kSetItemsBatch) {
    pickle.op('(');
    for (size_t i = begin; i < std::min(entries.size(), begin + kSetItemsBatch); ++i) {
      const auto& [name, tensor] = entries[i];
      if (!tensor.defined() || tensor.device().type() != at::kCPU || tensor.is_sparse() || tensor.is_quantized())
        throw Error(path + ": cannot write '" + name + "': only dense CPU tensors can be written");
      const char* storage_type = storage_class(tensor.scalar_type());
      if (!storage_type)
        throw Error(path + ": cannot write '" + name + "': dtype " + std::string(c10::toString(tensor.scalar_type())) +
                    " has no torch.save storage type here");
      const c10::StorageImpl* storage = tensor.storage().unsafeGetStorageImpl();
      auto [slot, inserted] = key_of.emplace(storage, std::to_string(storages.size()));
      if (inserted) {
        storages.push_back(tensor);
      } else if (storages[std::stoul(slot->second)].scalar_type() != tensor.scalar_type()) {
        throw Error(path + ": cannot write '" + name + "': it shares its storage with a tensor of another dtype");
      }
      const int64_t storage_numel = static_cast<int64_t>(tensor.storage().nbytes() / tensor.element_size());

      pickle.string(name);
      pickle.global("torch._utils", "_rebuild_tensor_v2");
      pickle.op('(');
      pickle.op('(');  // persistent id ('storage', torch.<T>Storage, key, 'cpu', numel)
      pickle.memoized_string("storage");
      pickle.global("torch", storage_type);
      pickle.string(slot->second);
      pickle.memoized_string("cpu");
      pickle.integer(storage_numel);
      pickle.op('t');
      pickle.op('Q');  // BINPERSID
      pickle.integer(tensor.storage_offset());
      pickle.int_tuple(tensor.sizes());
      pickle.int_tuple(tensor.strides());
      pickle.op('\x89');  // requires_grad = False
      pickle.global("collections", "OrderedDict");  // backward_hooks = OrderedDict()
      pickle.op(')');
      pickle.op('R');
      pickle.op('t');
      pickle.op('R');
    }
    pickle.op('u');  // SETITEMS
  }
  pickle.op('.');

  // torch writes the storages in the order of their keys compared as strings ("10" before "2").
  std::map<std::string, const at::Tensor*> by_key;
  for (size_t k = 0; k < storages.size(); ++k) by_key.emplace(std::to_string(k), &storages[k]);
  const std::string folder = kRecord;
  std::vector<Record> records{{folder + "/data.pkl", reinterpret_cast<const uint8_t*>(pickle.bytes().data()),
                               pickle.bytes().size()}};
  for (const auto& [key, tensor] : by_key)
    records.push_back({folder + "/data/" + key, static_cast<const uint8_t*>(tensor->storage().data()),
                       tensor->storage().nbytes()});
  static const char kVersion[] = "3\n";
  records.push_back({folder + "/version", reinterpret_cast<const uint8_t*>(kVersion), sizeof kVersion - 1});
  const std::string zip = zip_of(records, path);

  // Write beside the target and rename, so that an interrupted write never leaves a broken file
  // where a previous one (e.g. the best weights so far) was.
  const std::string partial = path + ".partial";
  {
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(path + ": cannot write weights: " + std::strerror(errno));
    out.write(zip.data(), static_cast<std::streamsize>(zip.size()));
    out.close();
    if (!out) {
      std::remove(partial.c_str());
      throw Error(path + ": error while writing weights: " + std::strerror(errno));
    }
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(partial.c_str());
    throw Error(path + ": cannot write weights: " + reason);
  }
}

}  // namespace klay
