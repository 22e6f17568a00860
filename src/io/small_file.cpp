#include "io/small_file.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "core/error.hpp"
#include "io/h5_handle.hpp"

namespace adaptdiff::io {
namespace {

hid_t memory_type(const torch::Tensor& t, const std::string& name) {
  switch (t.scalar_type()) {
    case torch::kFloat: return H5T_NATIVE_FLOAT;
    case torch::kDouble: return H5T_NATIVE_DOUBLE;
    case torch::kLong: return H5T_NATIVE_INT64;
    case torch::kByte: return H5T_NATIVE_UINT8;
    default:
      throw InputError("write_small_file: dataset '" + name + "' has type " + std::string(c10::toString(t.scalar_type())) +
                       "; float32, float64, int64 and uint8 are supported");
  }
}

void write_array(hid_t file, const std::string& name, const torch::Tensor& values, const h5::Site& site) {
  const torch::Tensor t = values.contiguous().cpu();
  const hid_t type = memory_type(t, name);
  std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
  h5::Handle space = dims.empty() ? ADAPTDIFF_H5_OPEN(site, H5Sclose, H5Screate, H5S_SCALAR)
                                  : ADAPTDIFF_H5_OPEN(site, H5Sclose, H5Screate_simple, static_cast<int>(dims.size()),
                                                      dims.data(), nullptr);
  h5::Handle dset = ADAPTDIFF_H5_OPEN(site, H5Dclose, H5Dcreate2, file, name.c_str(), type, space.get(), H5P_DEFAULT,
                                      H5P_DEFAULT, H5P_DEFAULT);
  if (t.numel() > 0) ADAPTDIFF_H5(site, H5Dwrite, dset.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr());
  dset.close();
}

h5::Handle utf8_string_type(const h5::Site& site) {
  h5::Handle type = ADAPTDIFF_H5_OPEN(site, H5Tclose, H5Tcopy, H5T_C_S1);
  ADAPTDIFF_H5(site, H5Tset_size, type.get(), H5T_VARIABLE);
  ADAPTDIFF_H5(site, H5Tset_cset, type.get(), H5T_CSET_UTF8);
  return type;
}

void write_strings(hid_t file, const std::string& name, const std::vector<std::string>& values, const h5::Site& site) {
  h5::Handle type = utf8_string_type(site);
  const hsize_t n = values.size();
  h5::Handle space = ADAPTDIFF_H5_OPEN(site, H5Sclose, H5Screate_simple, 1, &n, nullptr);
  h5::Handle dset = ADAPTDIFF_H5_OPEN(site, H5Dclose, H5Dcreate2, file, name.c_str(), type.get(), space.get(),
                                      H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  if (n > 0) ADAPTDIFF_H5(site, H5Dwrite, dset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data());
  dset.close();
}

void write_attribute(hid_t file, const std::string& name, const std::string& value, const h5::Site& site) {
  h5::Handle type = utf8_string_type(site);
  h5::Handle space = ADAPTDIFF_H5_OPEN(site, H5Sclose, H5Screate, H5S_SCALAR);
  h5::Handle attr = ADAPTDIFF_H5_OPEN(site, H5Aclose, H5Acreate2, file, name.c_str(), type.get(), space.get(),
                                      H5P_DEFAULT, H5P_DEFAULT);
  const char* ptr = value.c_str();
  ADAPTDIFF_H5(site, H5Awrite, attr.get(), type.get(), &ptr);
  attr.close();
}

}  // namespace

void write_small_file(const std::string& path, const SmallFile& content) {
  h5::silence_error_printing();
  const std::string tmp = path + ".tmp";
  const h5::Site site("write_small_file", path);
  {
    h5::Handle file = ADAPTDIFF_H5_OPEN(site, H5Fclose, H5Fcreate, tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT,
                                        H5P_DEFAULT);
    for (const auto& [name, values] : content.arrays) write_array(file.get(), name, values, site.at(name));
    for (const auto& [name, values] : content.strings) write_strings(file.get(), name, values, site.at(name));
    for (const auto& [name, value] : content.attributes) write_attribute(file.get(), name, value, site.at(name));
    ADAPTDIFF_H5(site, H5Fflush, file.get(), H5F_SCOPE_GLOBAL);
    file.close();
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw IoError("write_small_file: cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
}

void check_new_output(const std::string& path, bool overwrite, const std::string& tool) {
  namespace fs = std::filesystem;
  const fs::path target = fs::absolute(path);
  std::error_code ec;
  if (fs::exists(target, ec) && !overwrite)
    throw InputError(tool + ": '" + path + "' exists; pass --force to replace it");
  if (fs::is_directory(target, ec)) throw InputError(tool + ": '" + path + "' is a folder, expected a file name");
  fs::create_directories(target.parent_path(), ec);
  if (ec || ::access(target.parent_path().c_str(), W_OK) != 0)
    throw InputError(tool + ": cannot write into the folder '" + target.parent_path().string() +
                     "' (it could not be created or is not writable)");
  const std::string probe = target.string() + ".tmp";  // what write_small_file will create (root passes access())
  if (!std::ofstream(probe, std::ios::trunc))
    throw InputError(tool + ": cannot create '" + probe + "' in the folder '" + target.parent_path().string() + "'");
  fs::remove(probe, ec);
}

}  // namespace adaptdiff::io
