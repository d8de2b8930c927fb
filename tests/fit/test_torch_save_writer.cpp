// torch.save writer: our reader gets back exactly what was written (every conformance weights file
// read -> written -> read), shared storages are stored once, entries are 64-byte aligned, and
// Debian's python3-torch torch.load gives the same OrderedDict (check_torch_load.py).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "weights/state_dict.hpp"
#include "weights/torch_save_writer.hpp"
#include "weights/zip_archive.hpp"

namespace fs = std::filesystem;

namespace {

const fs::path kConformance = KLAY_CONFORMANCE_DIR;
const fs::path kOutput = KLAY_TEST_OUTPUT_DIR;

std::vector<fs::path> conformance_weights() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(kConformance))
    if (entry.path().extension() == ".pth") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

// Same names in the same order, same dtypes and shapes, and the same bytes.
void expect_identical(const klay::StateDict& expected, const klay::StateDict& actual, const std::string& what) {
  ASSERT_EQ(expected.entries.size(), actual.entries.size()) << what;
  for (size_t i = 0; i < expected.entries.size(); ++i) {
    const auto& [name, a] = expected.entries[i];
    const auto& [actual_name, b] = actual.entries[i];
    EXPECT_EQ(name, actual_name) << what;
    ASSERT_EQ(a.scalar_type(), b.scalar_type()) << what << " " << name;
    ASSERT_EQ(a.sizes(), b.sizes()) << what << " " << name;
    const at::Tensor ca = a.contiguous(), cb = b.contiguous();
    EXPECT_EQ(0, std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes())) << what << " " << name;
  }
}

// A state_dict with the cases a writer can get wrong: a tensor under two names (an alias), views
// with offsets and strides into one storage, every common dtype, a 0-d and an empty tensor, and
// integers and doubles that need all their bits.
std::vector<std::pair<std::string, at::Tensor>> tricky_state() {
  at::manual_seed(7);
  const at::Tensor matrix = at::randn({3, 4}, at::kDouble);
  const at::Tensor big = at::randn({70000}, at::kDouble);
  return {
      {"dense.weight", matrix},
      {"second_pass.weight", matrix},
      {"transposed", matrix.t()},
      {"row", matrix.select(0, 2)},
      {"tail_of_big", big.narrow(0, 66000, 5)},
      {"float32", at::randn({2, 3}, at::kFloat)},
      {"int64", at::tensor({int64_t(-1), int64_t(1) << 40, int64_t(300), int64_t(-70000)}, at::kLong)},
      {"int32", at::tensor({-5, 7}, at::kInt)},
      {"bool", at::tensor({1, 0, 1}, at::kInt).to(at::kBool)},
      {"scalar", at::scalar_tensor(1.0 / 3.0, at::kDouble)},
      {"empty", at::empty({0}, at::kDouble)},
      {"five_dims", at::randn({1, 2, 1, 2, 3}, at::kDouble)},
  };
}

std::vector<uint8_t> file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST(TorchSaveWriter, EveryConformanceWeightsFileSurvivesReadWriteRead) {
  const std::vector<fs::path> files = conformance_weights();
  ASSERT_GT(files.size(), 40u);
  fs::create_directories(kOutput);
  for (const fs::path& file : files) {
    const klay::StateDict original = klay::load_state_dict(file.string());
    const std::string copy = (kOutput / "conformance_copy.pth").string();
    klay::write_torch_save(copy, original.entries);
    const klay::StateDict again = klay::load_state_dict(copy);
    EXPECT_EQ(again.format, "torch.save (zip, pickle protocol 2)");
    expect_identical(original, again, file.string());
  }
}

TEST(TorchSaveWriter, SharedStoragesAreStoredOnceAndEntriesAreAligned) {
  const auto state = tricky_state();
  const fs::path path = kOutput / "tricky.pth";
  fs::create_directories(kOutput);
  klay::write_torch_save(path.string(), state);

  const std::vector<uint8_t> bytes = file_bytes(path);
  const klay::ZipArchive zip(klay::ByteView{bytes.data(), bytes.size()}, path.string());
  std::set<std::string> names;
  for (const auto& entry : zip.entries()) {
    names.insert(entry.name);
    EXPECT_EQ(entry.method, 0) << entry.name;
    EXPECT_EQ(entry.data_offset % 64, 0u) << entry.name;
  }
  // matrix (4 names), big, and 7 tensors of their own: 9 storages.
  std::set<std::string> expected{"archive/data.pkl", "archive/version"};
  for (int k = 0; k < 9; ++k) expected.insert("archive/data/" + std::to_string(k));
  EXPECT_EQ(names, expected);
  const klay::ByteView version = zip.read(*zip.find("archive/version"));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(version.data), version.size), "3\n");

  const klay::StateDict read = klay::load_state_dict(path.string());
  ASSERT_EQ(read.entries.size(), state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    EXPECT_EQ(read.entries[i].first, state[i].first);
    EXPECT_EQ(read.entries[i].second.scalar_type(), state[i].second.scalar_type()) << state[i].first;
    EXPECT_TRUE(at::equal(read.entries[i].second, state[i].second)) << state[i].first;
  }
}

TEST(TorchSaveWriter, RefusesWhatTorchSaveCannotHoldWithTheFileName) {
  const std::string path = (kOutput / "refused.pth").string();
  fs::create_directories(kOutput);
  try {
    klay::write_torch_save(path, {{"complex", at::zeros({2}, at::kComplexDouble)}});
    FAIL() << "a complex tensor was written";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'complex'"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_THROW(klay::write_torch_save((kOutput / "no_such_dir" / "x.pth").string(), tricky_state()), std::exception);
}

// Python's torch.load (Debian python3-torch 1.13) must see what we wrote: for a conformance file
// rewritten by us, the same OrderedDict as torch.load of the original (which real KLay wrote); for
// the tricky state, the values printed here with round-trip precision and the alias's storage
// shared. (Our reader copies every tensor, so a conformance file's sharing is not carried over.)
TEST(TorchSaveWriter, PythonTorchLoadReadsTheSameStateDict) {
  const std::string python = KLAY_TORCH_PYTHON;
  if (std::system((python + " -c 'import torch' > /dev/null 2>&1").c_str()) != 0)
    GTEST_SKIP() << python << " cannot import torch (Debian package python3-torch)";
  fs::create_directories(kOutput);
  const std::string script = std::string(KLAY_TEST_SOURCE_DIR) + "/check_torch_load.py";

  for (const char* case_name : {"model_arbitrary_and_alias", "staged_nequip_staged2_si8", "model_mace_model_si8"}) {
    const fs::path original = kConformance / case_name / "weights.pth";
    const fs::path copy = kOutput / (std::string(case_name) + ".pth");
    klay::write_torch_save(copy.string(), klay::load_state_dict(original.string()).entries);
    const std::string command = python + " " + script + " " + copy.string() + " --reference " + original.string();
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
  }

  const auto state = tricky_state();
  const fs::path written = kOutput / "tricky_for_python.pth", values = kOutput / "tricky_for_python.txt";
  klay::write_torch_save(written.string(), state);
  // One line per entry: name, dtype, shape, values (flattened, row-major).
  std::FILE* out = std::fopen(values.string().c_str(), "w");
  ASSERT_NE(out, nullptr);
  for (const auto& [name, tensor] : state) {
    std::fprintf(out, "%s %s", name.c_str(), std::string(c10::toString(tensor.scalar_type())).c_str());
    std::fprintf(out, " %lld", static_cast<long long>(tensor.dim()));
    for (int64_t size : tensor.sizes()) std::fprintf(out, " %lld", static_cast<long long>(size));
    const at::Tensor flat = tensor.contiguous().reshape({-1});
    for (int64_t i = 0; i < flat.numel(); ++i) {
      if (at::isFloatingType(flat.scalar_type()))
        std::fprintf(out, " %.17g", flat[i].item<double>());
      else
        std::fprintf(out, " %lld", static_cast<long long>(flat[i].item<int64_t>()));
    }
    std::fprintf(out, "\n");
  }
  std::fclose(out);
  const std::string command = python + " " + script + " " + written.string() + " --values " + values.string() +
                              " --shared dense.weight,second_pass.weight,transposed,row";
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}
