#pragma once
// Shared helpers of the model tests: paths of the golden reference set and of the shipped configs, temporary
// files under the system temp folder, and the two error norms the parity tests report.
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
