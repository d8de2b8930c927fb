// Hand-written safetensors files (header length, JSON header, raw data) per the format's
// definition, read back by load_state_dict.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "weights_testing.hpp"
#include "weights/state_dict.hpp"

namespace {
using klay_test::Bytes;
using klay_test::expect_error;
using klay_test::raw_bytes;

Bytes safetensors(const std::string& header, const Bytes& data) {
  Bytes out;
  for (int i = 0; i < 8; ++i) out.push_back(uint8_t(uint64_t(header.size()) >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

class Safetensors : public ::testing::Test {
 protected:
  klay::StateDict load(const Bytes& bytes) {
    klay_test::write_bytes(scratch_.file("w.safetensors"), bytes);
    return klay::load_state_dict(path());
  }
  void expect_load_error(const Bytes& bytes, const std::vector<std::string>& parts) {
    klay_test::write_bytes(scratch_.file("w.safetensors"), bytes);
    std::vector<std::string> with_path = parts;
    with_path.push_back(path());
    expect_error([&] { klay::load_state_dict(path()); }, with_path);
  }
  std::string path() const { return scratch_.file("w.safetensors").string(); }
  klay_test::ScratchDir scratch_;
};

TEST_F(Safetensors, ReadsEveryDtypeWithShapesAndValues) {
  const std::vector<double> f64 = {1.5, -2.25, 3.0e-300, 4.0, 5.0, 6.0};
  const std::vector<float> f32 = {0.5f, -7.0f};
  const std::vector<uint16_t> f16 = {0x3C00, 0xC000};   // 1.0, -2.0
  const std::vector<uint16_t> bf16 = {0x3F80, 0x4040};  // 1.0, 3.0
  const std::vector<int64_t> i64 = {-(int64_t(1) << 40)};
  const std::vector<int32_t> i32 = {-5, 7};
  const std::vector<int16_t> i16 = {-300};
  const std::vector<int8_t> i8 = {-8, 9};
  const std::vector<uint8_t> u8 = {250};
  const std::vector<uint8_t> flags = {1, 0, 1};
  // Header in an order other than the data's, with __metadata__ and the usual space padding.
  const std::string header =
      "{\"__metadata__\": {\"format\": \"pt\"},"
      "\"b.f32\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [48, 56]},"
      "\"a.f64\": {\"dtype\": \"F64\", \"shape\": [2, 3], \"data_offsets\": [0, 48]},"
      "\"c.f16\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [56, 60]},"
      "\"d.bf16\": {\"dtype\": \"BF16\", \"shape\": [2, 1], \"data_offsets\": [60, 64]},"
      "\"e.i64\": {\"dtype\": \"I64\", \"shape\": [], \"data_offsets\": [64, 72]},"
      "\"f.i32\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [72, 80]},"
      "\"g.i16\": {\"dtype\": \"I16\", \"shape\": [1], \"data_offsets\": [80, 82]},"
      "\"h.i8\": {\"dtype\": \"I8\", \"shape\": [2], \"data_offsets\": [82, 84]},"
      "\"i.u8\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [84, 85]},"
      "\"j.bool\": {\"dtype\": \"BOOL\", \"shape\": [3], \"data_offsets\": [85, 88]},"
      "\"k.empty\": {\"dtype\": \"F64\", \"shape\": [0], \"data_offsets\": [88, 88]}}   ";
  const klay::StateDict sd = load(safetensors(header, concat({raw_bytes(f64), raw_bytes(f32), raw_bytes(f16), raw_bytes(bf16),
                                                                raw_bytes(i64), raw_bytes(i32), raw_bytes(i16), raw_bytes(i8),
                                                                raw_bytes(u8), raw_bytes(flags)})));
  EXPECT_EQ(sd.format, "safetensors");
  ASSERT_EQ(sd.entries.size(), 11u);
  EXPECT_EQ(sd.entries[0].first, "a.f64");  // file (data) order
  EXPECT_TRUE(at::equal(*sd.find("a.f64"), at::tensor(f64, at::kDouble).view({2, 3})));
  EXPECT_TRUE(at::equal(*sd.find("b.f32"), at::tensor(f32)));
  EXPECT_TRUE(at::equal(*sd.find("c.f16"), at::tensor({1.0, -2.0}, at::kDouble).to(at::kHalf)));
  EXPECT_TRUE(at::equal(*sd.find("d.bf16"), at::tensor({1.0, 3.0}, at::kDouble).to(at::kBFloat16).view({2, 1})));
  EXPECT_EQ(sd.find("e.i64")->dim(), 0);
  EXPECT_EQ(sd.find("e.i64")->item<int64_t>(), -(int64_t(1) << 40));
  EXPECT_TRUE(at::equal(*sd.find("f.i32"), at::tensor(i32)));
  EXPECT_TRUE(at::equal(*sd.find("g.i16"), at::tensor({-300}, at::kShort)));
  EXPECT_TRUE(at::equal(*sd.find("h.i8"), at::tensor({-8, 9}, at::kChar)));
  EXPECT_EQ(sd.find("i.u8")->scalar_type(), at::kByte);
  EXPECT_EQ(sd.find("i.u8")->item<uint8_t>(), 250);
  EXPECT_TRUE(at::equal(*sd.find("j.bool"), at::tensor({1, 0, 1}, at::kByte).to(at::kBool)));
  EXPECT_EQ(sd.find("k.empty")->sizes(), at::IntArrayRef({0}));
}

// The format stores an empty tensor as data_offsets [o, o], which shares its start with the next
// tensor; the reference writer orders the header by dtype then name, so the empty tensor can come
// anywhere. Every position (first, between, last, several at one offset) must load.
TEST_F(Safetensors, ReadsEmptyTensorsAtEveryPosition) {
  const std::vector<double> first = {1.0, 2.0};
  const std::vector<double> second = {3.0};
  const Bytes data = concat({raw_bytes(first), raw_bytes(second)});
  const auto entry = [](const std::string& name, int64_t extent, int begin, int end) {
    return "\"" + name + "\": {\"dtype\": \"F64\", \"shape\": [" + std::to_string(extent) + "], \"data_offsets\": [" +
           std::to_string(begin) + ", " + std::to_string(end) + "]}";
  };
  const std::string full_first = entry("full.first", 2, 0, 16), full_second = entry("full.second", 1, 16, 24);
  for (const int empty_at : {0, 16, 24}) {
    SCOPED_TRACE("empty tensors at offset " + std::to_string(empty_at));
    // Empty tensors listed after the full ones in the header, so that sorting by start offset
    // alone would put a full tensor before an empty one starting where it starts.
    const std::string header = "{" + full_first + ", " + full_second + ", " + entry("empty.a", 0, empty_at, empty_at) +
                               ", " + entry("empty.b", 0, empty_at, empty_at) + "}";
    const klay::StateDict sd = load(safetensors(header, data));
    ASSERT_EQ(sd.entries.size(), 4u);
    EXPECT_TRUE(at::equal(*sd.find("full.first"), at::tensor(first, at::kDouble)));
    EXPECT_TRUE(at::equal(*sd.find("full.second"), at::tensor(second, at::kDouble)));
    EXPECT_EQ(sd.find("empty.a")->numel(), 0);
    EXPECT_EQ(sd.find("empty.b")->numel(), 0);
  }
}

TEST_F(Safetensors, DecodesJsonEscapesInNames) {
  const std::vector<float> one = {1.0f};
  const klay::StateDict sd =
      load(safetensors(R"({"caf\u00e9.\"x\"\\\ud83d\ude00": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", raw_bytes(one)));
  ASSERT_EQ(sd.entries.size(), 1u);
  EXPECT_EQ(sd.entries[0].first, "caf\xc3\xa9.\"x\"\\\xf0\x9f\x98\x80");
}

TEST_F(Safetensors, EmptyFileHeaderHasNoTensors) { EXPECT_TRUE(load(safetensors("{}", {})).entries.empty()); }

TEST_F(Safetensors, RejectsBadHeadersAndData) {
  const Bytes eight(8, 0);
  const std::string tensor = R"("w": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]})";
  // Header length beyond the file: truncated.
  Bytes truncated = safetensors("{" + tensor + "}", eight);
  truncated.resize(truncated.size() - 20);
  expect_load_error(truncated, {"header length", "exceeds the file"});
  expect_load_error(safetensors("{" + tensor + ",}", eight), {"safetensors header", "expected '\"'"});
  expect_load_error(safetensors("{" + tensor + "} x", eight), {"unexpected text after the header"});
  expect_load_error(safetensors(R"({"w": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}})", Bytes(1, 0)),
                    {"tensor \"w\"", "unsupported dtype \"F8_E4M3\""});
  expect_load_error(safetensors(R"({"w": {"dtype": "F64", "shape": [2], "data_offsets": [0, 8]}})", eight),
                    {"tensor \"w\"", "span 8 bytes", "need 16"});
  expect_load_error(safetensors(R"({"w": {"dtype": "F64", "shape": [1], "data_offsets": [8, 16]}})", Bytes(16, 0)),
                    {"tensor \"w\"", "leave a gap"});
  expect_load_error(safetensors("{" + tensor + "}", Bytes(12, 0)), {"4 bytes no tensor refers to"});
  expect_load_error(safetensors("{" + tensor + ", " + tensor + "}", eight), {"duplicate key \"w\""});
  expect_load_error(safetensors(R"({"w": {"dtype": "F64", "shape": [-1], "data_offsets": [0, 8]}})", eight),
                    {"expected a non-negative integer"});
  expect_load_error(safetensors(R"({"w": {"dtype": "F64", "shape": [1.0], "data_offsets": [0, 8]}})", eight),
                    {"fraction or exponent"});
  expect_load_error(safetensors(R"({"w": {"dtype": "F64", "shape": [99999999999999999999], "data_offsets": [0, 8]}})", eight),
                    {"integer too large"});
  expect_load_error(safetensors(R"({"w": {"dtype": "F64", "shape": [1]}})", eight), {"lacks dtype, shape or data_offsets"});
  expect_load_error(safetensors(R"({"w": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8], "extra": 1}})", eight),
                    {"unexpected or repeated key \"extra\""});
  expect_load_error(safetensors(R"({"__metadata__": {"n": 1}})", {}), {"expected '\"'"});
  expect_load_error(safetensors(R"({"w\ud800": {}})", {}), {"unpaired high surrogate"});
  expect_load_error(safetensors(R"({"w": {"dtype": "BOOL", "shape": [1], "data_offsets": [0, 1]}})", Bytes(1, 2)),
                    {"BOOL data holds bytes other than 0 and 1"});
  // A shape whose byte size overflows 64 bits.
  expect_load_error(
      safetensors(R"({"w": {"dtype": "F64", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", eight),
      {"size overflows"});
}

}  // namespace
