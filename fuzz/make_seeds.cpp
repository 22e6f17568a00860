// Writes the generated seed inputs of the fuzz targets (run by tools/fuzz.sh; nothing here is committed):
//   OUT/npy/         small .npy files: float16/32/64, both byte orders, C and Fortran order, header versions
//                    1.0/2.0/3.0, and refused ones (int64, structured, 1-D, truncated)
//   OUT/checkpoint/  small LibTorch-written state dicts (raw zip files) and, for them and for every checkpoint
//                    named on the command line, 'P' + its data.pkl (the fuzz_checkpoint pickle mode)
// Usage: fuzz_make_seeds OUT [CHECKPOINT ...]
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

void write(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string npy(const std::string& descr, const std::string& shape, bool fortran, const std::string& data,
                int major = 1) {
  std::string header = "{'descr': " + (descr[0] == '[' ? descr : "'" + descr + "'") +
                       ", 'fortran_order': " + (fortran ? "True" : "False") + ", 'shape': " + shape + ", }";
  const size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  for (size_t k = 0; k < (major == 1 ? 2u : 4u); ++k) out += static_cast<char>((header.size() >> (8 * k)) & 0xff);
  return out + header + data;
}

// `n` elements of `item` bytes with varied values (some exact floats of every type); `big`: byte-swapped.
std::string elements(int n, int item, bool big) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    std::string e(static_cast<size_t>(item), '\0');
    const double v = 0.25 * (i + 1) * (i % 2 ? -1 : 1);
    if (item == 8) std::memcpy(e.data(), &v, 8);
    if (item == 4) {
      const float f = static_cast<float>(v);
      std::memcpy(e.data(), &f, 4);
    }
    if (item == 2) {
      const uint16_t h = static_cast<uint16_t>(0x3400 + 0x100 * (i % 8));  // 0.25, 0.3125, ... as binary16
      std::memcpy(e.data(), &h, 2);
    }
    if (big) std::reverse(e.begin(), e.end());
    out += e;
  }
  return out;
}

void npy_seeds(const fs::path& dir) {
  fs::create_directories(dir);
  int k = 0;
  auto put = [&](const std::string& bytes) { write(dir / ("seed_" + std::to_string(k++) + ".npy"), bytes); };
  for (int item : {2, 4, 8}) {
    for (bool big : {false, true}) {
      for (bool fortran : {false, true}) {
        const std::string descr = std::string(big ? ">" : "<") + "f" + std::to_string(item);
        put(npy(descr, "(3, 4)", fortran, elements(12, item, big), 1 + k % 3));
      }
    }
  }
  put(npy("|f4", "(2, 2)", false, elements(4, 4, false)));
  put(npy("<i8", "(2, 2)", false, elements(4, 8, false)));
  put(npy("[('x', '<f4'), ('y', '>f8')]", "(2,)", false, elements(6, 4, false)));
  put(npy("<f4", "(8,)", false, elements(8, 4, false)));
  put(npy("<f4", "(5, 3)", false, elements(9, 4, false)));  // truncated
}

// data.pkl of a checkpoint, or "" when it has none.
std::string pickle_of(const std::string& path) {
  caffe2::serialize::PyTorchStreamReader reader(path);
  if (!reader.hasRecord("data.pkl")) return "";
  at::DataPtr ptr;
  size_t n = 0;
  std::tie(ptr, n) = reader.getRecord("data.pkl");
  return std::string(static_cast<const char*>(ptr.get()), n);
}

void checkpoint_seeds(const fs::path& dir, const std::vector<std::string>& checkpoints) {
  fs::create_directories(dir);
  // Small state dicts in every storage type the reader knows, with a view (offset and stride) among them;
  // storages stay under 256 bytes so that the pickle mode's records hold them.
  c10::Dict<std::string, at::Tensor> d;
  d.insert("w", torch::arange(12, torch::kFloat32).view({3, 4}));
  d.insert("w_t", torch::arange(12, torch::kFloat64).view({3, 4}).t());
  d.insert("h", torch::ones({5}, torch::kHalf));
  d.insert("b", torch::ones({2, 2}, torch::kBFloat16));
  d.insert("i", torch::arange(6, torch::kInt64).slice(0, 2, 6, 2));
  d.insert("m", torch::tensor({true, false}));
  d.insert("c", torch::arange(4, torch::kInt8));
  const std::vector<char> zip = torch::pickle_save(c10::IValue(d));
  const fs::path small = dir / "small_state_dict.pt";
  write(small, std::string(zip.begin(), zip.end()));
  std::vector<std::string> all = checkpoints;
  all.push_back(small.string());
  int k = 0;
  for (const std::string& path : all) {
    const std::string pkl = pickle_of(path);
    if (!pkl.empty()) write(dir / ("pickle_" + std::to_string(k++) + ".bin"), "P" + pkl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s OUT [CHECKPOINT ...]\n", argv[0]);
    return 2;
  }
  try {
    const fs::path out = argv[1];
    npy_seeds(out / "npy");
    checkpoint_seeds(out / "checkpoint", std::vector<std::string>(argv + 2, argv + argc));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
