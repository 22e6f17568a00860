#pragma once
// Serial, read-only access to an arbitrary HDF5 file (reference data for adaptdiff-verify):
// list groups, read whole datasets as tensors, read scalar attributes.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace adaptdiff::io {

class H5Reader {
 public:
  /// Opens `path` read-only. Throws IoError naming the file if it cannot be opened.
  explicit H5Reader(const std::string& path);
  ~H5Reader();
  H5Reader(H5Reader&&) noexcept;
  H5Reader(const H5Reader&) = delete;
  H5Reader& operator=(const H5Reader&) = delete;

  /// True if an object (group or dataset) exists at `path` (absolute, e.g. "/sampling/x_T").
  bool exists(const std::string& path) const;
  /// Names of the direct children of group `path`, sorted.
  std::vector<std::string> children(const std::string& path) const;
  /// Whole dataset as a CPU tensor: float32 -> kFloat32, float64 -> kFloat64, integers -> kInt64.
  /// Throws IoError naming file and dataset if it is missing or of another type class.
  torch::Tensor read(const std::string& path) const;
  bool has_attribute(const std::string& object, const std::string& name) const;
  /// Scalar numeric attribute (integer or float). Throws IoError if missing.
  double attribute_number(const std::string& object, const std::string& name) const;
  /// Scalar string attribute (fixed or variable length). Throws IoError if missing.
  std::string attribute_string(const std::string& object, const std::string& name) const;
  const std::string& path() const { return path_; }

 private:
  struct File;
  std::string path_;
  std::unique_ptr<File> file_;
};

}  // namespace adaptdiff::io
