#include "weights_testing.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "base/error.hpp"
#include "weights/zip_archive.hpp"

namespace klay_test {
namespace fs = std::filesystem;

fs::path conformance_dir() { return fs::path(KLAY_SHARED_DIR) / "conformance"; }

std::vector<fs::path> conformance_files(const std::string& file_name) {
  std::vector<fs::path> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(conformance_dir()))
    if (entry.is_directory() && fs::exists(entry.path() / file_name)) files.push_back(entry.path() / file_name);
  std::sort(files.begin(), files.end());
  return files;
}

Bytes read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

ScratchDir::ScratchDir() {
  std::string pattern = (fs::temp_directory_path() / "klay_weights_test_XXXXXX").string();
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

namespace {

void put16(Bytes& out, uint32_t value) {
  out.push_back(uint8_t(value));
  out.push_back(uint8_t(value >> 8));
}
void put32(Bytes& out, uint32_t value) {
  put16(out, value & 0xFFFF);
  put16(out, value >> 16);
}
void put64(Bytes& out, uint64_t value) {
  put32(out, uint32_t(value));
  put32(out, uint32_t(value >> 32));
}
void append(Bytes& out, const std::string& text) { out.insert(out.end(), text.begin(), text.end()); }

}  // namespace

Bytes make_stored_zip(const std::vector<ZipEntryBytes>& entries, bool zip64_extra) {
  Bytes out, directory;
  for (const ZipEntryBytes& entry : entries) {
    const uint32_t crc = klay::crc32({entry.data.data(), entry.data.size()});
    const uint32_t offset = uint32_t(out.size());
    put32(out, 0x04034b50);
    put16(out, 20);  // version needed
    put16(out, 0);   // flags
    put16(out, 0);   // stored
    put32(out, 0);   // time, date
    put32(out, crc);
    put32(out, uint32_t(entry.data.size()));
    put32(out, uint32_t(entry.data.size()));
    put16(out, uint16_t(entry.name.size()));
    put16(out, 0);
    append(out, entry.name);
    out.insert(out.end(), entry.data.begin(), entry.data.end());

    put32(directory, 0x02014b50);
    put16(directory, 45);
    put16(directory, 45);
    put16(directory, 0);
    put16(directory, 0);
    put32(directory, 0);
    put32(directory, crc);
    put32(directory, zip64_extra ? 0xFFFFFFFFu : uint32_t(entry.data.size()));
    put32(directory, zip64_extra ? 0xFFFFFFFFu : uint32_t(entry.data.size()));
    put16(directory, uint16_t(entry.name.size()));
    put16(directory, zip64_extra ? 28 : 0);
    put16(directory, 0);  // comment
    put16(directory, 0);  // disk
    put16(directory, 0);  // internal attributes
    put32(directory, 0);  // external attributes
    put32(directory, zip64_extra ? 0xFFFFFFFFu : offset);
    append(directory, entry.name);
    if (zip64_extra) {
      put16(directory, 0x0001);
      put16(directory, 24);
      put64(directory, entry.data.size());
      put64(directory, entry.data.size());
      put64(directory, offset);
    }
  }
  const uint32_t directory_offset = uint32_t(out.size());
  out.insert(out.end(), directory.begin(), directory.end());
  put32(out, 0x06054b50);
  put16(out, 0);
  put16(out, 0);
  put16(out, uint16_t(entries.size()));
  put16(out, uint16_t(entries.size()));
  put32(out, uint32_t(directory.size()));
  put32(out, directory_offset);
  put16(out, 0);
  return out;
}

PickleWriter& PickleWriter::global(const std::string& module, const std::string& name) {
  op('c');
  append(bytes, module + "\n" + name + "\n");
  return *this;
}

PickleWriter& PickleWriter::unicode(const std::string& text) {
  op('X');
  put32(bytes, uint32_t(text.size()));
  append(bytes, text);
  return *this;
}

PickleWriter& PickleWriter::tensor(const std::string& storage_class, const std::string& key, uint8_t storage_numel,
                                   uint8_t offset, const std::vector<uint8_t>& size, const std::vector<uint8_t>& stride) {
  global("torch._utils", "_rebuild_tensor_v2").mark();
  mark().unicode("storage").global("torch", storage_class).unicode(key).unicode("cpu").int1(storage_numel).tuple().op('Q');
  int1(offset);
  mark();
  for (uint8_t extent : size) int1(extent);
  tuple().mark();
  for (uint8_t step : stride) int1(step);
  tuple();
  op(0x89);  // NEWFALSE: requires_grad
  ordered_dict();
  return tuple().reduce();
}

Bytes make_torch_save(const Bytes& pickle, const std::vector<ZipEntryBytes>& storages) {
  std::vector<ZipEntryBytes> entries = {{"archive/data.pkl", pickle}};
  for (const ZipEntryBytes& storage : storages) entries.push_back({"archive/data/" + storage.name, storage.data});
  entries.push_back({"archive/version", {'3', '\n'}});
  return make_stored_zip(entries);
}

void expect_error(const std::function<void()>& action, const std::vector<std::string>& parts) {
  try {
    action();
    ADD_FAILURE() << "expected a klay::Error";
  } catch (const klay::Error& error) {
    const std::string message = error.what();
    for (const std::string& part : parts) EXPECT_NE(message.find(part), std::string::npos) << "missing \"" << part << "\" in: " << message;
  }
}

}  // namespace klay_test
