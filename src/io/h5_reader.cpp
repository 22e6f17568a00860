#include "io/h5_reader.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "io/h5_handle.hpp"

namespace adaptdiff::io {

struct H5Reader::File {
  h5::Handle handle;
};

H5Reader::H5Reader(const std::string& path)
    : path_(path), file_(std::make_unique<File>(File{h5::open_file_serial(path, H5F_ACC_RDONLY, true, "reader::open")})) {}

H5Reader::~H5Reader() = default;
H5Reader::H5Reader(H5Reader&&) noexcept = default;

bool H5Reader::exists(const std::string& path) const {
  const h5::Site site("reader::exists", path_, path);
  // H5Lexists needs every intermediate link to exist: check each prefix.
  for (size_t next = path.find('/', 1);; next = path.find('/', next + 1)) {
    const std::string prefix = path.substr(0, next);
    if (ADAPTDIFF_H5(site, H5Lexists, file_->handle.get(), prefix.c_str(), H5P_DEFAULT) == 0) return false;
    if (next == std::string::npos) return true;
    // An intermediate link must be a group ("/a/b" where /a is a dataset does not exist). A failed
    // H5Gopen2 is the answer here, not an error.
    const hid_t g = H5Gopen2(file_->handle.get(), prefix.c_str(), H5P_DEFAULT);
    if (g < 0) return false;
    H5Gclose(g);
  }
}

std::vector<std::string> H5Reader::children(const std::string& path) const {
  const h5::Site site("reader::children", path_, path);
  h5::Handle g = ADAPTDIFF_H5_OPEN(site, H5Gclose, H5Gopen2, file_->handle.get(), path.c_str(), H5P_DEFAULT);
  H5G_info_t info;
  ADAPTDIFF_H5(site, H5Gget_info, g.get(), &info);
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n = ADAPTDIFF_H5(site, H5Lget_name_by_idx, g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr,
                                   size_t{0}, H5P_DEFAULT);
    std::string name(static_cast<size_t>(n) + 1, '\0');
    ADAPTDIFF_H5(site, H5Lget_name_by_idx, g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(),
                 H5P_DEFAULT);
    name.resize(static_cast<size_t>(n));
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

torch::Tensor H5Reader::read(const std::string& path) const {
  const h5::Site site("reader::read", path_, path);
  if (!exists(path)) throw IoError("reader::read: file '" + path_ + "' has no dataset '" + path + "'");
  h5::Handle d = ADAPTDIFF_H5_OPEN(site, H5Dclose, H5Dopen2, file_->handle.get(), path.c_str(), H5P_DEFAULT);
  const auto dims = h5::dataset_dims(d.get(), site);
  const std::vector<int64_t> shape(dims.begin(), dims.end());
  h5::Handle type = ADAPTDIFF_H5_OPEN(site, H5Tclose, H5Dget_type, d.get());
  torch::Tensor out;
  hid_t mem_type = H5T_NATIVE_INT64;
  switch (h5::type_class(type.get(), site)) {
    case H5T_FLOAT: {
      const bool f64 = h5::type_size(type.get(), site) == 8;
      out = torch::empty(shape, f64 ? torch::kFloat64 : torch::kFloat32);
      mem_type = f64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
      break;
    }
    case H5T_INTEGER:
      if (h5::type_size(type.get(), site) == 1 && h5::type_sign(type.get(), site) == H5T_SGN_NONE) {
        out = torch::empty(shape, torch::kUInt8);
        mem_type = H5T_NATIVE_UINT8;
      } else {
        out = torch::empty(shape, torch::kInt64);
      }
      break;
    default:
      throw IoError("reader::read: dataset '" + path + "' of '" + path_ + "' is " + h5::type_name(type.get(), site) +
                    ", expected numbers");
  }
  if (out.numel() > 0) ADAPTDIFF_H5(site, H5Dread, d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr());
  return out;
}

bool H5Reader::has_attribute(const std::string& object, const std::string& name) const {
  const h5::Site site("reader::has_attribute", path_, object);
  return ADAPTDIFF_H5(site, H5Aexists_by_name, file_->handle.get(), object.c_str(), name.c_str(), H5P_DEFAULT) > 0;
}

double H5Reader::attribute_number(const std::string& object, const std::string& name) const {
  const h5::Site site("reader::attribute", path_, object + "@" + name);
  if (!has_attribute(object, name)) throw IoError("reader: '" + object + "' of '" + path_ + "' has no attribute '" + name + "'");
  h5::Handle a = ADAPTDIFF_H5_OPEN(site, H5Aclose, H5Aopen_by_name, file_->handle.get(), object.c_str(), name.c_str(),
                                   H5P_DEFAULT, H5P_DEFAULT);
  double v = 0.0;
  ADAPTDIFF_H5(site, H5Aread, a.get(), H5T_NATIVE_DOUBLE, &v);
  return v;
}

std::string H5Reader::attribute_string(const std::string& object, const std::string& name) const {
  const h5::Site site("reader::attribute", path_, object + "@" + name);
  if (!has_attribute(object, name)) throw IoError("reader: '" + object + "' of '" + path_ + "' has no attribute '" + name + "'");
  h5::Handle a = ADAPTDIFF_H5_OPEN(site, H5Aclose, H5Aopen_by_name, file_->handle.get(), object.c_str(), name.c_str(),
                                   H5P_DEFAULT, H5P_DEFAULT);
  h5::Handle type = ADAPTDIFF_H5_OPEN(site, H5Tclose, H5Aget_type, a.get());
  if (h5::type_class(type.get(), site) != H5T_STRING) {
    throw IoError("reader: attribute '" + name + "' of '" + object + "' in '" + path_ + "' is not a string");
  }
  if (ADAPTDIFF_H5(site, H5Tis_variable_str, type.get()) > 0) {
    h5::Handle mem = ADAPTDIFF_H5_OPEN(site, H5Tclose, H5Tcopy, H5T_C_S1);
    ADAPTDIFF_H5(site, H5Tset_size, mem.get(), H5T_VARIABLE);
    ADAPTDIFF_H5(site, H5Tset_cset, mem.get(), h5::type_cset(type.get(), site));
    char* s = nullptr;
    ADAPTDIFF_H5(site, H5Aread, a.get(), mem.get(), &s);
    std::string out = s != nullptr ? s : "";
    H5free_memory(s);
    return out;
  }
  std::string out(h5::type_size(type.get(), site), '\0');
  ADAPTDIFF_H5(site, H5Aread, a.get(), type.get(), out.data());
  out.erase(std::find(out.begin(), out.end(), '\0'), out.end());
  return out;
}

}  // namespace adaptdiff::io
