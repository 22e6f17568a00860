#pragma once
// Shared helpers of the model tests: paths of the golden reference set and of the shipped configs, temporary
// files under the system temp folder, and the two error norms the parity tests report.
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <unistd.h>

namespace adaptdiff::model::test {

inline std::string shared_dir() { return ADAPTDIFF_SHARED_DIR; }
inline std::string golden_dir() { return shared_dir() + "/golden/idiff_face_tiny"; }
inline std::string golden_model_toml() { return golden_dir() + "/model.toml"; }
inline std::string golden_unet_ckpt() { return golden_dir() + "/ema_averaged_model.ckpt"; }
inline std::string golden_decoder_pt() { return golden_dir() + "/first_stage_decoder_state_dict.pt"; }
inline std::string golden_h5() { return golden_dir() + "/reference.h5"; }
inline std::string source_dir() { return ADAPTDIFF_SOURCE_DIR; }

// The tiny architecture of the golden set, inline so that these tests do not depend on shared files.
inline const char* kTinyModel = R"(
[unet]
input_channels = 3
initial_channels = 32
channel_multipliers = [1, 2]
is_attention = [false, true]
attention_heads = -1
attention_head_channels = 16
n_blocks_per_resolution = 1
condition_type = "CA"
context_input_channels = 512
context_channels = 64
[diffusion]
T = 1000
latent_height = 16
latent_width = 16
[decoder]
ch = 32
ch_mult = [1, 2]
num_res_blocks = 1
resolution = 32
)";

/// Random inputs of one UNet forward at two timesteps and the network's own output on them (no grad).
struct ForwardCase {
  torch::Tensor x, t, c, ref;
};
template <typename Net>
ForwardCase forward_case(Net& net, uint64_t seed, int64_t t0, int64_t t1) {
  torch::manual_seed(seed);
  ForwardCase f;
  f.x = torch::randn({2, 3, 16, 16});
  f.t = torch::tensor({t0, t1}, torch::kLong);
  f.c = torch::randn({2, 512});
  torch::NoGradGuard g;
  f.ref = net->forward(f.x, f.t, f.c);
  return f;
}

/// A file path under the temp folder that is removed when this object goes out of scope.
class TempFile {
 public:
  explicit TempFile(const std::string& stem) {
    path_ = (std::filesystem::temp_directory_path() /
             ("adaptdiff_model_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++) + "_" + stem))
                .string();
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

  void write(const std::string& bytes) const {
    std::ofstream f(path_, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }

 private:
  static int& counter() {
    static int c = 0;
    return c;
  }
  std::string path_;
};

inline std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

/// Writes a state dict with LibTorch's own torch.save-compatible writer (a plain Dict[str, Tensor] root).
inline void write_with_libtorch(const std::string& path,
                                const std::vector<std::pair<std::string, torch::Tensor>>& items) {
  c10::Dict<std::string, at::Tensor> d;
  for (const auto& [k, v] : items) d.insert(k, v);
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(d));
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// The parameters of `m` (detached copies) under `prefix` + their dotted names, in module order.
inline std::vector<std::pair<std::string, torch::Tensor>> module_state(torch::nn::Module& m,
                                                                       const std::string& prefix = "") {
  std::vector<std::pair<std::string, torch::Tensor>> sd;
  for (const auto& p : m.named_parameters(true)) sd.emplace_back(prefix + p.key(), p.value().detach().clone());
  return sd;
}

/// max |out - ref|
inline double max_abs(const torch::Tensor& out, const torch::Tensor& ref) {
  return (out.to(torch::kDouble) - ref.to(torch::kDouble)).abs().max().item<double>();
}

/// ||out - ref|| / ||ref|| (Frobenius, in float64)
inline double rel_l2(const torch::Tensor& out, const torch::Tensor& ref) {
  const torch::Tensor r = ref.to(torch::kDouble);
  return ((out.to(torch::kDouble) - r).norm() / r.norm()).item<double>();
}

}  // namespace adaptdiff::model::test
