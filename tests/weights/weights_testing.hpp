// Helpers shared by the weights tests: the conformance folder, a scratch folder, and writers for
// hand-made inputs (a stored zip archive, pickle bytes).
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace klay_test {

using Bytes = std::vector<uint8_t>;

std::filesystem::path conformance_dir();
// Every <case>/<file_name> in the conformance folder, sorted.
std::vector<std::filesystem::path> conformance_files(const std::string& file_name);

Bytes read_bytes(const std::filesystem::path& path);
void write_bytes(const std::filesystem::path& path, const Bytes& bytes);

// A fresh folder under the system temp dir, removed with its content at scope exit.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::filesystem::path file(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// A zip archive with stored entries and correct CRCs. With zip64_extra, every central directory
// entry saturates its sizes and offset at 0xFFFFFFFF and gives them in a zip64 extra field.
struct ZipEntryBytes {
  std::string name;
  Bytes data;
};
Bytes make_stored_zip(const std::vector<ZipEntryBytes>& entries, bool zip64_extra = false);

// Pickle bytes, one opcode per call; the opcodes are those of CPython's pickle module.
class PickleWriter {
 public:
  PickleWriter& op(uint8_t opcode) { bytes.push_back(opcode); return *this; }
  PickleWriter& proto2() { return op(0x80).op(2); }
  PickleWriter& global(const std::string& module, const std::string& name);
  PickleWriter& unicode(const std::string& text);  // BINUNICODE
  PickleWriter& int1(uint8_t value) { return op('K').op(value); }
  PickleWriter& mark() { return op('('); }
  PickleWriter& tuple() { return op('t'); }
  PickleWriter& empty_tuple() { return op(')'); }
  PickleWriter& reduce() { return op('R'); }
  PickleWriter& setitems() { return op('u'); }
  PickleWriter& stop() { return op('.'); }
  // Leaves an empty OrderedDict on the stack.
  PickleWriter& ordered_dict() { return global("collections", "OrderedDict").empty_tuple().reduce(); }
  // Leaves _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()) on the stack.
  PickleWriter& tensor(const std::string& storage_class, const std::string& key, uint8_t storage_numel, uint8_t offset,
                       const std::vector<uint8_t>& size, const std::vector<uint8_t>& stride);
  Bytes bytes;
};

// A torch.save-like archive: "archive/data.pkl" plus "archive/data/<key>" storages.
Bytes make_torch_save(const Bytes& pickle, const std::vector<ZipEntryBytes>& storages);

template <typename T>
Bytes raw_bytes(const std::vector<T>& values) {
  const auto* begin = reinterpret_cast<const uint8_t*>(values.data());
  return Bytes(begin, begin + values.size() * sizeof(T));
}

// Runs `action`, which must throw klay::Error whose message contains every one of `parts`.
void expect_error(const std::function<void()>& action, const std::vector<std::string>& parts);

}  // namespace klay_test
