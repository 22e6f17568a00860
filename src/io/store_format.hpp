#pragma once
// Internal to io: the pieces of the output format that the parallel writer (store.cpp) and the serial
// reader (store_reader.cpp) share -- opening and checking datasets, hyperslab transfers, string attributes,
// argument checks. Not part of the public API.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/h5_handle.hpp"
#include "io/store_layout.hpp"

namespace adaptdiff::io::format {

namespace ds = store_dataset;

/// Largest piece of one H5Dwrite/H5Dread call: keeps every MPI-IO request far below 2 GiB.
constexpr int64_t kMaxPieceBytes = int64_t{1} << 30;

/// "[a, b)".
std::string range_text(int64_t a, int64_t b);
/// "[2, 3, 4]".
std::string shape_text(const std::vector<int64_t>& dims);

/// Throws IoError (prefixed by `op`) when a count of `l` is < 1.
void validate_layout(const StoreLayout& l, const std::string& op);

/// One open dataset with its file dataspace (reselected for every hyperslab).
struct Dataset {
  std::string name;
  h5::Handle dset;
  h5::Handle fspace;
  std::vector<hsize_t> dims;
  hid_t mem_type = H5I_INVALID_HID;      ///< H5T_NATIVE_* (library-owned, never closed)
  torch::ScalarType dtype = torch::kUInt8;
  const char* dtype_name = "";

  int64_t rows() const { return static_cast<int64_t>(dims.at(0)); }
  std::vector<int64_t> tail() const { return std::vector<int64_t>(dims.begin() + 1, dims.end()); }
};

/// Creates dataset `name` (contiguous, allocated early, never filled, no time stamps). Throws IoError.
void create_dataset(hid_t file, const char* name, hid_t file_type, const std::vector<int64_t>& dims,
                    const h5::Site& file_site);

/// Opens every dataset of an output file, checks types and size consistency and derives `layout`. Throws
/// IoError naming what makes the file not an adaptdiff output file.
std::map<std::string, Dataset> open_all(hid_t file, const h5::Site& site, StoreLayout& layout);

/// Reads or writes rows [row, row + count) of `d` from/to `buffer` (contiguous, row-major), in pieces of at
/// most kMaxPieceBytes. Throws IoError.
void transfer_rows(Dataset& d, int64_t row, int64_t count, void* buffer, hid_t dxpl, bool write,
                   const h5::Site& file_site);

/// Writes a variable-length UTF-8 string attribute `name` = `value` on `loc`. Throws IoError.
void write_string_attribute(hid_t loc, const std::string& name, const std::string& value, const h5::Site& file_site);
/// Value of root string attribute `name` (IoError listing the attributes when missing or not a string).
std::string string_attribute_of(hid_t file, const std::string& name, const h5::Site& site);
/// All root attributes of string type.
std::map<std::string, std::string> string_attributes_of(hid_t file, const h5::Site& site);

/// Throws IoError unless `t` is a defined CPU tensor of `dtype` and shape [n, tail...].
void check_tensor(const std::string& op, const char* what, const torch::Tensor& t, torch::ScalarType dtype,
                  const char* dtype_name, const std::vector<int64_t>& tail);

}  // namespace adaptdiff::io::format
