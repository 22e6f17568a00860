#include "io/store_reader.hpp"

#include <torch/torch.h>

#include "core/error.hpp"
#include "io/store_format.hpp"

namespace adaptdiff::io {

using namespace format;  // the shared pieces of the file format (internal to io)

// ---- StoreReader ------------------------------------------------------------------------------------------

struct StoreReader::Impl {
  std::string path;
  StoreLayout layout;
  h5::Handle file;
  std::map<std::string, Dataset> datasets;

  h5::Site site(const std::string& op) const { return h5::Site(op, path); }
};

StoreReader::StoreReader(const std::string& path, const StoreOptions& options) : impl_(std::make_unique<Impl>()) {
  const std::string op = "store::StoreReader";
  impl_->path = path;
  impl_->file = h5::open_file_serial(path, H5F_ACC_RDONLY, options.file_locking, op);
  impl_->datasets = open_all(impl_->file.get(), impl_->site(op), impl_->layout);
}

StoreReader::StoreReader(StoreReader&& other) noexcept = default;
StoreReader& StoreReader::operator=(StoreReader&& other) noexcept = default;
StoreReader::~StoreReader() = default;

const StoreLayout& StoreReader::layout() const { return impl_->layout; }
const std::string& StoreReader::path() const { return impl_->path; }

torch::Tensor StoreReader::read_images(int64_t row_begin, int64_t row_end) const {
  const std::string op = "store::read_images";
  Dataset& d = impl_->datasets.at(ds::kImages);
  if (row_begin < 0 || row_end < row_begin || row_end > d.rows()) {
    throw IoError(op + ": rows " + range_text(row_begin, row_end) + " outside [0, " + std::to_string(d.rows()) +
                  ") of '" + impl_->path + "'");
  }
  const auto& l = impl_->layout;
  torch::Tensor out = torch::empty({row_end - row_begin, l.height, l.width, 3}, torch::kUInt8);
  if (row_end > row_begin) {
    transfer_rows(d, row_begin, row_end - row_begin, out.data_ptr(), H5P_DEFAULT, /*write=*/false, impl_->site(op));
  }
  return out;
}

namespace {
torch::Tensor read_whole(hid_t file, const std::string& name, H5T_class_t want, const char* want_name,
                         torch::ScalarType dtype, hid_t mem_type, const h5::Site& file_site) {
  const h5::Site site = file_site.at(name);
  if (ADAPTDIFF_H5(site, H5Lexists, file, name.c_str(), H5P_DEFAULT) == 0) {
    throw IoError(site.op() + ": no dataset '" + name + "' in '" + site.file() + "'; the root group holds: " +
                  h5::list_group(file, "/", file_site));
  }
  h5::Handle dset = ADAPTDIFF_H5_OPEN(site, H5Dclose, H5Dopen2, file, name.c_str(), H5P_DEFAULT);
  h5::Handle type = ADAPTDIFF_H5_OPEN(site, H5Tclose, H5Dget_type, dset.get());
  if (h5::type_class(type.get(), site) != want) {
    throw IoError(site.op() + ": dataset '" + name + "' in '" + site.file() + "' has type " +
                  h5::type_name(type.get(), site) + "; expected " + want_name);
  }
  const auto dims = h5::dataset_dims(dset.get(), site);
  std::vector<int64_t> shape(dims.begin(), dims.end());
  torch::Tensor out = torch::empty(shape, dtype);
  if (out.numel() > 0) {
    ADAPTDIFF_H5(site, H5Dread, dset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr());
  }
  return out;
}
}  // namespace

torch::Tensor StoreReader::read_int64(const std::string& name) const {
  return read_whole(impl_->file.get(), name, H5T_INTEGER, "an integer type", torch::kInt64, H5T_NATIVE_INT64,
                    impl_->site("store::read_int64"));
}

torch::Tensor StoreReader::read_float32(const std::string& name) const {
  return read_whole(impl_->file.get(), name, H5T_FLOAT, "a float type", torch::kFloat32, H5T_NATIVE_FLOAT,
                    impl_->site("store::read_float32"));
}

bool StoreReader::has_dataset(const std::string& name) const {
  const h5::Site site = impl_->site("store::has_dataset").at(name);
  return ADAPTDIFF_H5(site, H5Lexists, impl_->file.get(), name.c_str(), H5P_DEFAULT) > 0;
}

std::string StoreReader::string_attribute(const std::string& name) const {
  return string_attribute_of(impl_->file.get(), name, impl_->site("store::string_attribute"));
}

std::map<std::string, std::string> StoreReader::string_attributes() const {
  return string_attributes_of(impl_->file.get(), impl_->site("store::string_attributes"));
}

}  // namespace adaptdiff::io
