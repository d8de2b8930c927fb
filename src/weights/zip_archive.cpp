#include "weights/zip_archive.hpp"

#include <array>
#include <cinttypes>
#include <cstdio>

#include "base/error.hpp"

namespace klay {
namespace {

constexpr uint32_t kLocalHeaderSignature = 0x04034b50;
constexpr uint32_t kCentralHeaderSignature = 0x02014b50;
constexpr uint32_t kEndSignature = 0x06054b50;
constexpr uint32_t kZip64EndSignature = 0x06064b50;
constexpr uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr size_t kEndRecordSize = 22;
constexpr size_t kZip64LocatorSize = 20;
constexpr size_t kZip64EndRecordSize = 56;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kLocalHeaderSize = 30;
constexpr uint16_t kZip64ExtraId = 0x0001;

uint16_t le16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
uint32_t le32(const uint8_t* p) { return uint32_t(le16(p)) | (uint32_t(le16(p + 2)) << 16); }
uint64_t le64(const uint8_t* p) { return uint64_t(le32(p)) | (uint64_t(le32(p + 4)) << 32); }

std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t n = 0; n < 256; ++n) {
    uint32_t c = n;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[n] = c;
  }
  return table;
}

std::string hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08" PRIx32, value);
  return text;
}

}  // namespace

uint32_t crc32(ByteView bytes) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < bytes.size; ++i) c = table[(c ^ bytes.data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

ZipArchive::ZipArchive(ByteView bytes, std::string path) : bytes_(bytes), path_(std::move(path)) {
  // The end record is the last thing in the file, followed only by its comment (<= 64 KiB).
  if (bytes_.size < kEndRecordSize) fail("too short to be a zip archive (" + std::to_string(bytes_.size) + " bytes)");
  size_t end_offset = bytes_.size;  // "not found"
  const size_t lowest = bytes_.size > kEndRecordSize + 0xFFFF ? bytes_.size - kEndRecordSize - 0xFFFF : 0;
  for (size_t at = bytes_.size - kEndRecordSize + 1; at-- > lowest;) {
    const uint8_t* p = bytes_.data + at;
    if (le32(p) == kEndSignature && at + kEndRecordSize + le16(p + 20) == bytes_.size) {
      end_offset = at;
      break;
    }
  }
  if (end_offset == bytes_.size) fail("zip end-of-central-directory record not found (truncated or not a zip archive)");

  const uint8_t* end = bytes_.data + end_offset;
  if (le16(end + 4) != 0 || le16(end + 6) != 0) fail("multi-disk zip archives are not supported");
  uint64_t count = le16(end + 10);
  uint64_t directory_size = le32(end + 12);
  uint64_t directory_offset = le32(end + 16);

  // torch writes a zip64 end record (and its locator) right before the classic one.
  if (end_offset >= kZip64LocatorSize && le32(end - kZip64LocatorSize) == kZip64LocatorSignature) {
    const uint64_t zip64_offset = le64(end - kZip64LocatorSize + 8);
    if (zip64_offset > end_offset - kZip64LocatorSize || end_offset - kZip64LocatorSize - zip64_offset < kZip64EndRecordSize)
      fail("zip64 end record offset out of range");
    const uint8_t* zip64 = bytes_.data + zip64_offset;
    if (le32(zip64) != kZip64EndSignature) fail("zip64 end record signature missing");
    count = le64(zip64 + 32);
    directory_size = le64(zip64 + 40);
    directory_offset = le64(zip64 + 48);
  }
  if (directory_offset > end_offset || directory_size > end_offset - directory_offset)
    fail("zip central directory lies outside the file (truncated archive?)");
  parse_central_directory(directory_offset, directory_size, count);
}

void ZipArchive::parse_central_directory(uint64_t offset, uint64_t size, uint64_t count) {
  const uint64_t directory_end = offset + size;
  uint64_t at = offset;
  for (uint64_t index = 0; index < count; ++index) {
    if (directory_end - at < kCentralHeaderSize) fail("zip central directory is shorter than its entry count");
    const uint8_t* h = bytes_.data + at;
    if (le32(h) != kCentralHeaderSignature) fail("zip central directory entry " + std::to_string(index) + " has a bad signature");
    const uint16_t flags = le16(h + 8);
    Entry entry;
    entry.method = le16(h + 10);
    entry.crc32 = le32(h + 16);
    entry.compressed_size = le32(h + 20);
    entry.uncompressed_size = le32(h + 24);
    const uint16_t name_size = le16(h + 28), extra_size = le16(h + 30), comment_size = le16(h + 32);
    uint64_t local_offset = le32(h + 42);
    if (directory_end - at - kCentralHeaderSize < uint64_t(name_size) + extra_size + comment_size)
      fail("zip central directory entry " + std::to_string(index) + " runs past the directory");
    entry.name.assign(reinterpret_cast<const char*>(h + kCentralHeaderSize), name_size);
    if (flags & 1) fail("zip entry '" + entry.name + "' is encrypted");

    // Zip64 extra field: the 64-bit values of exactly those fields saturated at 0xFFFFFFFF.
    const uint8_t* extra = h + kCentralHeaderSize + name_size;
    for (size_t pos = 0; pos + 4 <= extra_size;) {
      const uint16_t id = le16(extra + pos), length = le16(extra + pos + 2);
      if (pos + 4 + length > extra_size) fail("zip entry '" + entry.name + "' has a malformed extra field");
      if (id == kZip64ExtraId) {
        const uint8_t* value = extra + pos + 4;
        size_t left = length;
        for (uint64_t* field : {&entry.uncompressed_size, &entry.compressed_size, &local_offset}) {
          if (*field != 0xFFFFFFFFu) continue;
          if (left < 8) fail("zip entry '" + entry.name + "' has a short zip64 extra field");
          *field = le64(value);
          value += 8;
          left -= 8;
        }
      }
      pos += 4 + length;
    }

    // Sizes and CRC live in the central directory (torch writes zeros plus a data descriptor
    // locally); the local header only tells where the data starts.
    if (local_offset > bytes_.size || bytes_.size - local_offset < kLocalHeaderSize)
      fail("zip entry '" + entry.name + "': local header lies outside the file (truncated archive?)");
    const uint8_t* local = bytes_.data + local_offset;
    if (le32(local) != kLocalHeaderSignature) fail("zip entry '" + entry.name + "': bad local header signature");
    const uint16_t local_name_size = le16(local + 26), local_extra_size = le16(local + 28);
    entry.data_offset = local_offset + kLocalHeaderSize + local_name_size + local_extra_size;
    if (local_name_size != name_size ||
        entry.data_offset > bytes_.size ||
        std::string(reinterpret_cast<const char*>(local + kLocalHeaderSize), local_name_size) != entry.name)
      fail("zip entry '" + entry.name + "': local header does not match the central directory");
    if (entry.compressed_size > offset || entry.data_offset > offset - entry.compressed_size)
      fail("zip entry '" + entry.name + "': data runs into the central directory (truncated or corrupt archive)");
    entries_.push_back(std::move(entry));
    at += kCentralHeaderSize + name_size + extra_size + comment_size;
  }
}

const ZipArchive::Entry* ZipArchive::find(const std::string& name) const {
  for (const Entry& entry : entries_)
    if (entry.name == name) return &entry;
  return nullptr;
}

ByteView ZipArchive::read(const Entry& entry) const {
  if (entry.method != 0)
    fail("zip entry '" + entry.name + "' is compressed (method " + std::to_string(entry.method) +
         "); only stored entries are supported");
  if (entry.compressed_size != entry.uncompressed_size)
    fail("zip entry '" + entry.name + "' is stored but its sizes differ");
  const ByteView view{bytes_.data + entry.data_offset, size_t(entry.uncompressed_size)};
  const uint32_t computed = crc32(view);
  if (computed != entry.crc32)
    fail("zip entry '" + entry.name + "': CRC-32 mismatch (recorded " + hex32(entry.crc32) + ", computed " +
         hex32(computed) + "); the file is corrupt");
  return view;
}

void ZipArchive::fail(const std::string& message) const { throw Error(path_ + ": " + message); }

}  // namespace klay
