#include "io/eval_files.hpp"

#include "core/error.hpp"
#include "io/h5_handle.hpp"
#include "io/small_file.hpp"

namespace adaptdiff::io {

namespace {

// Opens dataset `name` of `file` and checks its type class, size, signedness (integers) and rank.
torch::Tensor read_typed(hid_t file, const std::string& path, const char* name, H5T_class_t cls, size_t size,
                         int rank, torch::ScalarType dtype) {
  const h5::Site site("eval::read_embeddings", path, name);
  if (ADAPTDIFF_H5(site, H5Lexists, file, name, H5P_DEFAULT) <= 0) {
    throw InputError("eval: file '" + path + "' has no dataset '" + name + "' (root members: " +
                     h5::list_group(file, "/", site) + ")");
  }
  h5::Handle d = ADAPTDIFF_H5_OPEN(site, H5Dclose, H5Dopen2, file, name, H5P_DEFAULT);
  h5::Handle type = ADAPTDIFF_H5_OPEN(site, H5Tclose, H5Dget_type, d.get());
  const auto dims = h5::dataset_dims(d.get(), site);
  const bool type_ok = h5::type_class(type.get(), site) == cls && h5::type_size(type.get(), site) == size &&
                       (cls != H5T_INTEGER || h5::type_sign(type.get(), site) == H5T_SGN_2);
  if (!type_ok || static_cast<int>(dims.size()) != rank) {
    std::string shape;
    for (size_t k = 0; k < dims.size(); ++k) shape += (k ? ", " : "") + std::to_string(dims[k]);
    throw InputError("eval: dataset '" + std::string(name) + "' of file '" + path + "' must be " +
                     (dtype == torch::kFloat32 ? "float32" : "int64") + " of rank " + std::to_string(rank) + "; found " +
                     h5::type_name(type.get(), site) + " [" + shape + "]");
  }
  const std::vector<int64_t> shape(dims.begin(), dims.end());
  torch::Tensor out = torch::empty(shape, dtype);
  const hid_t mem = dtype == torch::kFloat32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT64;
  if (out.numel() > 0) ADAPTDIFF_H5(site, H5Dread, d.get(), mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr());
  return out;
}

}  // namespace

EmbeddingsFile read_embeddings_file(const std::string& path) {
  h5::Handle file = h5::open_file_serial(path, H5F_ACC_RDONLY, true, "eval::read_embeddings");
  EmbeddingsFile out;
  out.embeddings = read_typed(file.get(), path, "embeddings", H5T_FLOAT, 4, 2, torch::kFloat32);
  out.identity = read_typed(file.get(), path, "identity", H5T_INTEGER, 8, 1, torch::kInt64);
  return out;
}

void write_embeddings_file(const std::string& path, const EmbeddingsFile& data) {
  SmallFile file;
  file.arrays.emplace_back("embeddings", data.embeddings.to(torch::kFloat32));
  file.arrays.emplace_back("identity", data.identity.to(torch::kInt64));
  write_small_file(path, file);
}

void write_scores_file(const std::string& path, const std::vector<double>& genuine,
                       const std::vector<double>& impostor) {
  SmallFile file;
  file.arrays.emplace_back("genuine", torch::tensor(genuine, torch::kDouble));
  file.arrays.emplace_back("impostor", torch::tensor(impostor, torch::kDouble));
  write_small_file(path, file);
}

}  // namespace adaptdiff::io
