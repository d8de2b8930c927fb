// safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON {"name": {"dtype": "F64", "shape": [2, 3], "data_offsets": [b, e]},
// ..., "__metadata__": {"key": "value"}}, then the raw little-endian data. Offsets are relative
// to the data section, which the tensors must cover exactly (no gaps, no overlap), as the
// reference implementation demands. The JSON parser accepts only what such a header can hold.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

#include "base/error.hpp"
#include "base/json.hpp"
#include "weights/readers.hpp"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; a big-endian host would need byte swapping here"
#endif

namespace klay {
namespace {

const std::map<std::string, at::ScalarType>& safetensors_dtypes() {
  static const std::map<std::string, at::ScalarType> dtypes = {
      {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16},
      {"I64", at::kLong},   {"I32", at::kInt},   {"I16", at::kShort}, {"I8", at::kChar},
      {"U8", at::kByte},    {"BOOL", at::kBool}};
  return dtypes;
}

struct TensorInfo {
  std::string name;
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

class HeaderParser {
 public:
  HeaderParser(const char* text, size_t size, const std::string& path) : text_(text), size_(size), path_(path) {}

  std::vector<TensorInfo> parse() {
    std::vector<TensorInfo> tensors;
    std::set<std::string> seen;
    expect('{');
    if (!consume('}')) {
      do {
        std::string name = parse_string();
        if (!seen.insert(name).second) fail("duplicate key \"" + name + "\"");
        expect(':');
        if (name == "__metadata__") {
          parse_metadata();
        } else {
          tensors.push_back(parse_tensor(std::move(name)));
        }
      } while (consume(','));
      expect('}');
    }
    skip_space();
    if (at_ != size_) fail("unexpected text after the header object");
    return tensors;
  }

 private:
  [[noreturn]] void fail(const std::string& message) const {
    throw Error(path_ + ": safetensors header, byte " + std::to_string(8 + at_) + ": " + message);
  }

  void skip_space() {
    while (at_ < size_ && (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\n' || text_[at_] == '\r')) ++at_;
  }
  bool consume(char c) {
    skip_space();
    if (at_ < size_ && text_[at_] == c) {
      ++at_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!consume(c)) fail(std::string("expected '") + c + "'");
  }

  // A string with JSON escapes, re-encoded as UTF-8.
  std::string parse_string() {
    expect('"');
    try {
      return json::decode_string(text_, size_, at_);
    } catch (const json::StringSyntaxError& e) {
      fail(e.what());
    }
  }

  // A non-negative JSON integer (no sign, fraction or exponent; no leading zeros).
  uint64_t parse_unsigned() {
    skip_space();
    if (at_ >= size_ || text_[at_] < '0' || text_[at_] > '9') fail("expected a non-negative integer");
    if (text_[at_] == '0' && at_ + 1 < size_ && text_[at_ + 1] >= '0' && text_[at_ + 1] <= '9') fail("integer with a leading zero");
    uint64_t value = 0;
    while (at_ < size_ && text_[at_] >= '0' && text_[at_] <= '9') {
      if (__builtin_mul_overflow(value, 10, &value) || __builtin_add_overflow(value, uint64_t(text_[at_] - '0'), &value))
        fail("integer too large");
      ++at_;
    }
    if (at_ < size_ && (text_[at_] == '.' || text_[at_] == 'e' || text_[at_] == 'E')) fail("expected an integer, found a fraction or exponent");
    return value;
  }

  std::vector<uint64_t> parse_unsigned_array() {
    std::vector<uint64_t> values;
    expect('[');
    if (consume(']')) return values;
    do values.push_back(parse_unsigned());
    while (consume(','));
    expect(']');
    return values;
  }

  void parse_metadata() {
    expect('{');
    if (consume('}')) return;
    do {
      parse_string();
      expect(':');
      skip_space();
      parse_string();  // the format allows only string values
    } while (consume(','));
    expect('}');
  }

  TensorInfo parse_tensor(std::string name) {
    TensorInfo info;
    info.name = std::move(name);
    bool has_dtype = false, has_shape = false, has_offsets = false;
    expect('{');
    do {
      const std::string key = parse_string();
      expect(':');
      if (key == "dtype" && !has_dtype) {
        const std::string dtype = parse_string();
        const auto found = safetensors_dtypes().find(dtype);
        if (found == safetensors_dtypes().end())
          fail("tensor \"" + info.name + "\": unsupported dtype \"" + dtype + "\" (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
        info.dtype = found->second;
        has_dtype = true;
      } else if (key == "shape" && !has_shape) {
        for (uint64_t extent : parse_unsigned_array()) {
          if (extent > uint64_t(INT64_MAX)) fail("tensor \"" + info.name + "\": shape entry too large");
          info.shape.push_back(int64_t(extent));
        }
        has_shape = true;
      } else if (key == "data_offsets" && !has_offsets) {
        const std::vector<uint64_t> offsets = parse_unsigned_array();
        if (offsets.size() != 2 || offsets[0] > offsets[1]) fail("tensor \"" + info.name + "\": data_offsets must be [begin, end] with begin <= end");
        info.begin = offsets[0];
        info.end = offsets[1];
        has_offsets = true;
      } else {
        fail("tensor \"" + info.name + "\": unexpected or repeated key \"" + key + "\"");
      }
    } while (consume(','));
    expect('}');
    if (!has_dtype || !has_shape || !has_offsets) fail("tensor \"" + info.name + "\" lacks dtype, shape or data_offsets");
    return info;
  }

  const char* text_;
  size_t size_;
  const std::string& path_;
  size_t at_ = 0;
};

}  // namespace

StateDict read_safetensors(ByteView bytes, const std::string& path) {
  if (bytes.size < 8) throw Error(path + ": too short for a safetensors file");
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes.data[i];
  if (header_size > bytes.size - 8) throw Error(path + ": safetensors header length " + std::to_string(header_size) + " exceeds the file (truncated?)");
  std::vector<TensorInfo> tensors = HeaderParser(reinterpret_cast<const char*>(bytes.data + 8), header_size, path).parse();

  const uint8_t* data = bytes.data + 8 + header_size;
  const uint64_t data_size = bytes.size - 8 - header_size;
  // An empty tensor [o, o] starts where the next tensor does: order by (begin, end), as the
  // reference reader does, so it comes first. Stable, so that ties keep the header's order.
  std::stable_sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  uint64_t covered = 0;
  StateDict result;
  result.format = "safetensors";
  for (const TensorInfo& info : tensors) {
    uint64_t expected = c10::elementSize(info.dtype);
    for (int64_t extent : info.shape)
      if (__builtin_mul_overflow(expected, uint64_t(extent), &expected)) throw Error(path + ": tensor \"" + info.name + "\": size overflows");
    if (info.end - info.begin != expected)
      throw Error(path + ": tensor \"" + info.name + "\": data_offsets span " + std::to_string(info.end - info.begin) +
                  " bytes, its dtype and shape need " + std::to_string(expected));
    if (info.begin != covered || info.end > data_size)
      throw Error(path + ": tensor \"" + info.name + "\": data_offsets [" + std::to_string(info.begin) + ", " +
                  std::to_string(info.end) + "] leave a gap, overlap another tensor or run past the " +
                  std::to_string(data_size) + "-byte data section");
    covered = info.end;
    at::Tensor tensor = at::empty(info.shape, at::TensorOptions().dtype(info.dtype));
    if (expected > 0) std::memcpy(tensor.data_ptr(), data + info.begin, expected);
    if (info.dtype == at::kBool &&
        std::any_of(data + info.begin, data + info.end, [](uint8_t byte) { return byte > 1; }))
      throw Error(path + ": tensor \"" + info.name + "\": BOOL data holds bytes other than 0 and 1");
    result.entries.emplace_back(info.name, std::move(tensor));
  }
  if (covered != data_size)
    throw Error(path + ": safetensors data section has " + std::to_string(data_size - covered) + " bytes no tensor refers to");
  return result;
}

}  // namespace klay
