// Hand-made torch.save archives (the pickle opcodes torch.save emits, written out one by one) and
// damaged copies of real files: good ones read correctly, bad ones give a klay::Error that names
// the file and the problem, never a crash.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "weights_testing.hpp"
#include "weights/state_dict.hpp"
#include "weights/zip_archive.hpp"

namespace {
using klay_test::Bytes;
using klay_test::conformance_dir;
using klay_test::expect_error;
using klay_test::make_torch_save;
using klay_test::PickleWriter;
using klay_test::raw_bytes;

const Bytes kSixDoubles = raw_bytes(std::vector<double>{0, 1, 2, 3, 4, 5});

class BadWeights : public ::testing::Test {
 protected:
  std::string write(const Bytes& bytes, const std::string& name = "w.pth") {
    klay_test::write_bytes(scratch_.file(name), bytes);
    return scratch_.file(name).string();
  }
  // Loading these bytes fails with a message naming the file and containing `parts`.
  void expect_load_error(const Bytes& bytes, std::vector<std::string> parts) {
    const std::string path = write(bytes);
    parts.push_back(path + ": ");
    expect_error([&] { klay::load_state_dict(path); }, parts);
  }
  // A state_dict pickle holding {"t": <whatever `value` writes>}.
  static Bytes one_entry_pickle(const std::function<void(PickleWriter&)>& value) {
    PickleWriter p;
    p.proto2().ordered_dict().mark().unicode("t");
    value(p);
    p.setitems().stop();
    return p.bytes;
  }
  klay_test::ScratchDir scratch_;
};

TEST(Crc32, StandardCheckValue) {
  const char* text = "123456789";
  EXPECT_EQ(klay::crc32({reinterpret_cast<const uint8_t*>(text), 9}), 0xCBF43926u);
}

// The shape of torch 1.13's state_dict pickle, plus views of a shared storage, a parameter,
// other storage types and the _metadata BUILD.
Bytes good_pickle() {
  PickleWriter p;
  p.proto2().ordered_dict().mark();
  p.unicode("a").tensor("DoubleStorage", "0", 6, 0, {2, 3}, {3, 1});
  p.unicode("b").tensor("DoubleStorage", "0", 6, 1, {2, 2}, {1, 3});  // b[i][j] = s[1 + i + 3j]
  p.unicode("c").global("torch._utils", "_rebuild_parameter").mark();
  p.tensor("FloatStorage", "1", 2, 0, {2}, {1}).op(0x88).ordered_dict().tuple().reduce();
  p.unicode("d").tensor("LongStorage", "2", 1, 0, {}, {});
  p.setitems();
  p.op('}').unicode("_metadata").ordered_dict().op('s').op('b');
  p.stop();
  return p.bytes;
}

std::vector<klay_test::ZipEntryBytes> good_storages() {
  return {{"0", kSixDoubles}, {"1", raw_bytes(std::vector<float>{0.5f, -1.5f})}, {"2", raw_bytes(std::vector<int64_t>{7})}};
}

void expect_good_contents(const klay::StateDict& sd) {
  ASSERT_EQ(sd.entries.size(), 4u);
  EXPECT_EQ(sd.entries[0].first, "a");
  EXPECT_EQ(sd.entries[3].first, "d");
  EXPECT_TRUE(at::equal(*sd.find("a"), at::tensor({0.0, 1.0, 2.0, 3.0, 4.0, 5.0}, at::kDouble).view({2, 3})));
  EXPECT_TRUE(at::equal(*sd.find("b"), at::tensor({1.0, 4.0, 2.0, 5.0}, at::kDouble).view({2, 2})));
  EXPECT_TRUE(at::equal(*sd.find("c"), at::tensor({0.5f, -1.5f})));
  EXPECT_EQ(sd.find("d")->dim(), 0);
  EXPECT_EQ(sd.find("d")->item<int64_t>(), 7);
}

TEST_F(BadWeights, HandMadeArchiveReadsCorrectly) {
  expect_good_contents(klay::load_state_dict(write(make_torch_save(good_pickle(), good_storages()))));
}

TEST_F(BadWeights, Zip64ExtraFieldsAreHonoured) {
  std::vector<klay_test::ZipEntryBytes> entries = {{"archive/data.pkl", good_pickle()}};
  for (const auto& storage : good_storages()) entries.push_back({"archive/data/" + storage.name, storage.data});
  expect_good_contents(klay::load_state_dict(write(klay_test::make_stored_zip(entries, /*zip64_extra=*/true))));
}

TEST_F(BadWeights, ForeignPickleGlobalsAreRefusedByName) {
  for (const auto& [module, name] : std::vector<std::pair<std::string, std::string>>{
           {"os", "system"}, {"builtins", "eval"}, {"torch", "load"}, {"torch._utils", "_rebuild_qtensor"}}) {
    PickleWriter p;
    p.proto2().global(module, name).unicode("echo pwned").op(0x85).reduce().stop();
    expect_load_error(make_torch_save(p.bytes, {}), {"refusing pickle global '" + module + "." + name + "'", "data.pkl at byte 2"});
  }
}

TEST_F(BadWeights, MalformedPicklesAreReported) {
  PickleWriter text_int;  // INT (protocol 0), which torch.save never writes
  text_int.proto2().op('I').stop();
  expect_load_error(make_torch_save(text_int.bytes, {}), {"unsupported pickle opcode 0x49"});

  Bytes no_stop = good_pickle();
  no_stop.pop_back();
  expect_load_error(make_torch_save(no_stop, good_storages()), {"pickle ends unexpectedly"});

  PickleWriter bad_memo;
  bad_memo.proto2().op('h').op(5).stop();
  expect_load_error(make_torch_save(bad_memo.bytes, {}), {"memo slot 5"});

  PickleWriter underflow;
  underflow.proto2().op('s').stop();
  expect_load_error(make_torch_save(underflow.bytes, {}), {"stack underflow"});

  PickleWriter not_dict;
  not_dict.proto2().int1(1).stop();
  expect_load_error(make_torch_save(not_dict.bytes, {}), {"pickled object is a int, expected a state_dict"});

  expect_load_error(make_torch_save(one_entry_pickle([](PickleWriter& p) { p.int1(3); }), {}),
                    {"state_dict entry 't' is a int, not a tensor"});

  PickleWriter storage_call;
  storage_call.proto2().global("torch", "DoubleStorage").empty_tuple().reduce().stop();
  expect_load_error(make_torch_save(storage_call.bytes, {}), {"calls 'torch.DoubleStorage'", "not callable"});
}

TEST_F(BadWeights, StorageProblemsAreReported) {
  const auto tensor = [](uint8_t numel, uint8_t offset, std::vector<uint8_t> size, std::vector<uint8_t> stride) {
    return one_entry_pickle([=](PickleWriter& p) { p.tensor("DoubleStorage", "0", numel, offset, size, stride); });
  };
  expect_load_error(make_torch_save(tensor(6, 0, {6}, {1}), {}), {"storage '0' is missing", "archive/data/0"});
  expect_load_error(make_torch_save(tensor(5, 0, {5}, {1}), {{"0", kSixDoubles}}),
                    {"storage '0' holds 48 bytes, expected 5 elements of 8 bytes"});
  expect_load_error(make_torch_save(tensor(6, 5, {2}, {1}), {{"0", kSixDoubles}}),
                    {"tensor view (offset 5) reaches outside its storage of 6 elements"});
  expect_load_error(make_torch_save(tensor(6, 0, {2, 2}, {3}), {{"0", kSixDoubles}}),
                    {"size and stride have different lengths"});
}

TEST_F(BadWeights, BigEndianStoragesAndUnallocatableViewsAreReported) {
  std::vector<klay_test::ZipEntryBytes> entries = {{"archive/data.pkl", good_pickle()}, {"archive/byteorder", {'b', 'i', 'g'}}};
  for (const auto& storage : good_storages()) entries.push_back({"archive/data/" + storage.name, storage.data});
  expect_load_error(klay_test::make_stored_zip(entries), {"storages are not little-endian"});

  // An expanded view (all strides 0) of 255^6 doubles: valid, but far too large to allocate.
  const Bytes huge = one_entry_pickle([](PickleWriter& p) {
    p.tensor("DoubleStorage", "0", 6, 0, {255, 255, 255, 255, 255, 255}, {0, 0, 0, 0, 0, 0});
  });
  expect_load_error(make_torch_save(huge, {{"0", kSixDoubles}}), {"allocate"});
}

TEST_F(BadWeights, CorruptDataFailsItsCrc) {
  Bytes archive = make_torch_save(good_pickle(), good_storages());
  const auto at = std::search(archive.begin(), archive.end(), kSixDoubles.begin(), kSixDoubles.end());
  ASSERT_NE(at, archive.end());
  at[20] ^= 0x01;
  expect_load_error(archive, {"zip entry 'archive/data/0': CRC-32 mismatch", "the file is corrupt"});

  // A real file: one flipped bit in its pickle.
  Bytes real = klay_test::read_bytes(conformance_dir() / "layer_AtomwiseLinear_1/weights.pth");
  const std::string marker = "OrderedDict";
  const auto pickle_at = std::search(real.begin(), real.end(), marker.begin(), marker.end());
  ASSERT_NE(pickle_at, real.end());
  *pickle_at ^= 0x20;
  expect_load_error(real, {"zip entry 'weights/data.pkl': CRC-32 mismatch"});
}

TEST_F(BadWeights, TruncatedArchivesAreReported) {
  const Bytes real = klay_test::read_bytes(conformance_dir() / "layer_ConvNetLayer_0/weights.pth");
  for (size_t keep : {real.size() - 1, real.size() - 30, real.size() / 2, size_t(100)})
    expect_load_error(Bytes(real.begin(), real.begin() + keep), {"end-of-central-directory record not found", "truncated"});
  expect_load_error(Bytes(real.begin(), real.begin() + 10), {"too short to be a zip archive"});

  // Damaged central directory.
  Bytes damaged = real;
  const std::string central = "PK\x01\x02";
  const auto at = std::search(damaged.begin(), damaged.end(), central.begin(), central.end());
  ASSERT_NE(at, damaged.end());
  at[3] = 0x09;
  expect_load_error(damaged, {"central directory entry 0 has a bad signature"});
}

TEST_F(BadWeights, DamagedTorchScriptArchivesAreReported) {
  const std::string path = (conformance_dir() / "layer_ConvNetLayer_0/model.pt").string();
  const Bytes real = klay_test::read_bytes(path);
  expect_load_error(Bytes(real.begin(), real.begin() + real.size() / 2), {"end-of-central-directory record not found"});

  // A stored tensor entry (CRC-checked by us) and a deflated code entry (libtorch does not check
  // its CRC; the damage surfaces as a TorchScript parse error).
  const klay::ZipArchive zip({real.data(), real.size()}, path);
  const klay::ZipArchive::Entry* data = zip.find("model/data/1");
  const klay::ZipArchive::Entry* code = zip.find("model/code/__torch__/e3nn/nn/_gate.py");
  ASSERT_TRUE(data && code);
  ASSERT_EQ(data->method, 0);
  ASSERT_EQ(code->method, 8);
  expect_error([&] { zip.read(*code); }, {"zip entry 'model/code/__torch__/e3nn/nn/_gate.py' is compressed (method 8)"});

  Bytes bad_data = real;
  bad_data[data->data_offset + 3] ^= 0x40;
  expect_load_error(bad_data, {"zip entry 'model/data/1': CRC-32 mismatch"});

  Bytes bad_code = real;
  bad_code[code->data_offset + code->compressed_size / 2] ^= 0x40;
  expect_load_error(bad_code, {"cannot load TorchScript archive"});
}

TEST_F(BadWeights, UnknownFormatsAreReported) {
  expect_load_error({0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19},
                    {"legacy (pre-1.6, non-zip) torch.save format"});
  expect_load_error({'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '\n'}, {"unrecognized weights format"});
  expect_load_error({}, {"empty file, expected a weights file"});
  expect_load_error(klay_test::make_stored_zip({{"notes.txt", {'h', 'i'}}}), {"not a PyTorch archive", "notes.txt"});
  expect_load_error(klay_test::make_stored_zip({{"archive/version", {'3', '\n'}}}), {"without 'archive/data.pkl'"});
  const std::string missing = scratch_.file("does_not_exist.pth").string();
  expect_error([&] { klay::load_state_dict(missing); }, {missing, "cannot open weights file", "No such file"});
}

}  // namespace
