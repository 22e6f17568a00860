#pragma once
// Serial, read-only access to an output file (store_layout.hpp): for tests and the status and summary tools.
// Includes no MPI.
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "io/store_layout.hpp"

namespace adaptdiff::io {

/// Serial, read-only access to an output file (one process; no MPI needed). Move-only; a moved-from
/// reader may only be destroyed or assigned to.
class StoreReader {
 public:
  /// Opens `path` read-only and reads the layout from the datasets. Throws IoError when the file is
  /// missing/unopenable (with a hint) or is not an adaptdiff output file.
  explicit StoreReader(const std::string& path, const StoreOptions& options = {});
  StoreReader(StoreReader&& other) noexcept;
  StoreReader& operator=(StoreReader&& other) noexcept;
  ~StoreReader();

  const StoreLayout& layout() const;
  const std::string& path() const;

  /// Image rows [row_begin, row_end) as uint8 CPU [n, H, W, 3]. Throws IoError for a range outside
  /// [0, N*K) or an HDF5 failure.
  torch::Tensor read_images(int64_t row_begin, int64_t row_end) const;

  /// Whole integer dataset `name` (e.g. "identity") converted to int64, shaped like the dataset.
  /// Throws IoError when missing (lists the root members) or not an integer dataset.
  torch::Tensor read_int64(const std::string& name) const;

  /// Whole float dataset `name` (e.g. "contexts", "latents") converted to float32, shaped like the
  /// dataset. Throws IoError when missing or not a float dataset.
  torch::Tensor read_float32(const std::string& name) const;

  /// True when the file has a dataset (or other link) `name` at the root.
  bool has_dataset(const std::string& name) const;

  /// As OutputStore::string_attribute / string_attributes.
  std::string string_attribute(const std::string& name) const;
  std::map<std::string, std::string> string_attributes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace adaptdiff::io
