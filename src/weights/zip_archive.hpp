// A read-only view of a zip archive held in memory, as written by torch.save and torch.jit.save
// (PyTorch's miniz writer: stored entries, data descriptors, zip64 end records, "FB" padding
// extra fields). Internal to src/weights.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace klay {

struct ByteView {
  const uint8_t* data = nullptr;
  size_t size = 0;
};

uint32_t crc32(ByteView bytes);

class ZipArchive {
 public:
  struct Entry {
    std::string name;
    uint16_t method = 0;  // 0 = stored, 8 = deflate
    uint32_t crc32 = 0;
    uint64_t compressed_size = 0;
    uint64_t uncompressed_size = 0;
    uint64_t data_offset = 0;  // of the entry's bytes, past its local header
  };

  // Parses the central directory and every local header; `path` only names the file in errors.
  // `bytes` must outlive the archive.
  ZipArchive(ByteView bytes, std::string path);

  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(const std::string& name) const;  // nullptr if absent
  // The bytes of a stored entry, after checking its CRC-32.
  ByteView read(const Entry& entry) const;

 private:
  [[noreturn]] void fail(const std::string& message) const;
  void parse_central_directory(uint64_t offset, uint64_t size, uint64_t count);

  ByteView bytes_;
  std::string path_;
  std::vector<Entry> entries_;
};

}  // namespace klay
