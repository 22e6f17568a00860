#include "io/store_format.hpp"

#include <algorithm>
#include <vector>

#include "core/error.hpp"
#include "core/log.hpp"

namespace adaptdiff::io {

bool StoreLayout::operator==(const StoreLayout& o) const {
  return identities == o.identities && images_per_identity == o.images_per_identity && height == o.height &&
         width == o.width && context_dim == o.context_dim && store_latents == o.store_latents &&
         (!store_latents || (latent_c == o.latent_c && latent_h == o.latent_h && latent_w == o.latent_w));
}

namespace format {

std::string range_text(int64_t a, int64_t b) { return "[" + std::to_string(a) + ", " + std::to_string(b) + ")"; }

std::string shape_text(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

std::string shape_text(const std::vector<hsize_t>& dims) {
  std::vector<int64_t> d(dims.begin(), dims.end());
  return shape_text(d);
}

void validate_layout(const StoreLayout& l, const std::string& op) {
  auto positive = [&](int64_t v, const char* name) {
    if (v < 1) throw IoError(op + ": invalid layout: " + name + " = " + std::to_string(v) + " (must be >= 1)");
  };
  positive(l.identities, "identities");
  positive(l.images_per_identity, "images_per_identity");
  positive(l.height, "height");
  positive(l.width, "width");
  positive(l.context_dim, "context_dim");
  if (l.store_latents) {
    positive(l.latent_c, "latent_c");
    positive(l.latent_h, "latent_h");
    positive(l.latent_w, "latent_w");
  }
}

// ---- datasets ---------------------------------------------------------------------------------------

void create_dataset(hid_t file, const char* name, hid_t file_type, const std::vector<int64_t>& dims,
                    const h5::Site& file_site) {
  const h5::Site site = file_site.at(name);
  std::vector<hsize_t> d(dims.begin(), dims.end());
  h5::Handle space = ADAPTDIFF_H5_OPEN(site, H5Sclose, H5Screate_simple, static_cast<int>(d.size()), d.data(), nullptr);
  h5::Handle dcpl = ADAPTDIFF_H5_OPEN(site, H5Pclose, H5Pcreate, H5P_DATASET_CREATE);
  ADAPTDIFF_H5(site, H5Pset_layout, dcpl.get(), H5D_CONTIGUOUS);
  ADAPTDIFF_H5(site, H5Pset_alloc_time, dcpl.get(), H5D_ALLOC_TIME_EARLY);
  ADAPTDIFF_H5(site, H5Pset_fill_time, dcpl.get(), H5D_FILL_TIME_NEVER);
  // No modification times in object headers: two runs of the same configuration give byte-identical files.
  ADAPTDIFF_H5(site, H5Pset_obj_track_times, dcpl.get(), false);
  h5::Handle dset = ADAPTDIFF_H5_OPEN(site, H5Dclose, H5Dcreate2, file, name, file_type, space.get(), H5P_DEFAULT,
                                      dcpl.get(), H5P_DEFAULT);
  dset.close();
}

namespace {

struct TypeSpec {
  H5T_class_t cls;
  size_t size;
  bool is_signed;  // integers only
  const char* name;
};
constexpr TypeSpec kU8{H5T_INTEGER, 1, false, "uint8"};
constexpr TypeSpec kI64{H5T_INTEGER, 8, true, "int64"};
constexpr TypeSpec kF32{H5T_FLOAT, 4, true, "float32"};

[[noreturn]] void foreign(const std::string& op, const std::string& path, const std::string& why) {
  throw IoError(op + ": '" + path + "' is not an adaptdiff output file: " + why);
}

// Opens dataset `name`, checks its type and rank and returns it ready for hyperslab I/O.
Dataset open_dataset(hid_t file, const char* name, const TypeSpec& spec, size_t rank, const h5::Site& file_site) {
  const h5::Site site = file_site.at(name);
  if (ADAPTDIFF_H5(site, H5Lexists, file, name, H5P_DEFAULT) == 0) {
    foreign(site.op(), site.file(), std::string("dataset '") + name + "' is missing; the root group holds: " +
                                        h5::list_group(file, "/", file_site));
  }
  Dataset d;
  d.name = name;
  d.dset = ADAPTDIFF_H5_OPEN(site, H5Dclose, H5Dopen2, file, name, H5P_DEFAULT);
  {
    h5::Handle type = ADAPTDIFF_H5_OPEN(site, H5Tclose, H5Dget_type, d.dset.get());
    const H5T_class_t cls = h5::type_class(type.get(), site);
    bool ok = cls == spec.cls && h5::type_size(type.get(), site) == spec.size;
    if (ok && cls == H5T_INTEGER) ok = (h5::type_sign(type.get(), site) == H5T_SGN_2) == spec.is_signed;
    if (!ok) {
      foreign(site.op(), site.file(), std::string("dataset '") + name + "' has type " +
                                          h5::type_name(type.get(), site) + ", expected " + spec.name);
    }
  }
  d.dims = h5::dataset_dims(d.dset.get(), site);
  if (d.dims.size() != rank) {
    foreign(site.op(), site.file(), std::string("dataset '") + name + "' has shape " + shape_text(d.dims) +
                                        ", expected " + std::to_string(rank) + "-D");
  }
  d.fspace = ADAPTDIFF_H5_OPEN(site, H5Sclose, H5Dget_space, d.dset.get());
  d.dtype_name = spec.name;
  if (spec.cls == H5T_FLOAT) {
    d.mem_type = H5T_NATIVE_FLOAT;
    d.dtype = torch::kFloat32;
  } else if (spec.size == 1) {
    d.mem_type = H5T_NATIVE_UINT8;
    d.dtype = torch::kUInt8;
  } else {
    d.mem_type = H5T_NATIVE_INT64;
    d.dtype = torch::kInt64;
  }
  return d;
}

// Opens every dataset of an output file, checks types and size consistency and derives the layout.
}  // namespace

std::map<std::string, Dataset> open_all(hid_t file, const h5::Site& site, StoreLayout& layout) {
  std::map<std::string, Dataset> m;
  m.emplace(ds::kImages, open_dataset(file, ds::kImages, kU8, 4, site));
  m.emplace(ds::kIdentity, open_dataset(file, ds::kIdentity, kI64, 1, site));
  m.emplace(ds::kSampleIndex, open_dataset(file, ds::kSampleIndex, kI64, 1, site));
  m.emplace(ds::kContexts, open_dataset(file, ds::kContexts, kF32, 2, site));
  m.emplace(ds::kNegativeIndex, open_dataset(file, ds::kNegativeIndex, kI64, 1, site));
  m.emplace(ds::kNegativeSimilarity, open_dataset(file, ds::kNegativeSimilarity, kF32, 1, site));
  if (ADAPTDIFF_H5(site, H5Lexists, file, ds::kSampleChecksum, H5P_DEFAULT) <= 0) {
    foreign(site.op(), site.file(), "it has no 'sample_checksum' progress record");
  }
  m.emplace(ds::kSampleChecksum, open_dataset(file, ds::kSampleChecksum, kI64, 1, site));
  // Absent in files of layout 2 (before compute batch sizes were recorded): those still open for reading.
  if (ADAPTDIFF_H5(site, H5Lexists, file, ds::kComputeBatchSize, H5P_DEFAULT) > 0) {
    m.emplace(ds::kComputeBatchSize, open_dataset(file, ds::kComputeBatchSize, kI64, 1, site));
  }
  // Absent in files written before durable marks existed: their resumes verify every done sample.
  if (ADAPTDIFF_H5(site, H5Lexists, file, ds::kSampleDurable, H5P_DEFAULT) > 0) {
    m.emplace(ds::kSampleDurable, open_dataset(file, ds::kSampleDurable, kU8, 1, site));
  }
  const bool latents = ADAPTDIFF_H5(site, H5Lexists, file, ds::kLatents, H5P_DEFAULT) > 0;
  if (latents) m.emplace(ds::kLatents, open_dataset(file, ds::kLatents, kF32, 4, site));

  const auto& img = m.at(ds::kImages).dims;
  const auto& ctx = m.at(ds::kContexts).dims;
  const hsize_t n = ctx[0], nk = img[0];
  auto bad = [&](const std::string& why) { foreign(site.op(), site.file(), why); };
  if (n == 0 || nk % n != 0) {
    bad("images has " + std::to_string(nk) + " rows, not a multiple of the " + std::to_string(n) + " contexts");
  }
  if (img[3] != 3) bad("images has shape " + shape_text(img) + ", expected [N*K, H, W, 3]");
  for (const char* name : {ds::kIdentity, ds::kSampleIndex, ds::kSampleChecksum, ds::kComputeBatchSize,
                           ds::kSampleDurable}) {
    if (m.count(name) != 0 && m.at(name).dims[0] != nk) bad(std::string(name) + " has " + std::to_string(m.at(name).dims[0]) + " rows, images " + std::to_string(nk));
  }
  for (const char* name : {ds::kNegativeIndex, ds::kNegativeSimilarity}) {
    if (m.at(name).dims[0] != n) bad(std::string(name) + " has " + std::to_string(m.at(name).dims[0]) + " rows, contexts " + std::to_string(n));
  }
  layout = StoreLayout{};
  layout.identities = static_cast<int64_t>(n);
  layout.images_per_identity = static_cast<int64_t>(nk / n);
  layout.height = static_cast<int64_t>(img[1]);
  layout.width = static_cast<int64_t>(img[2]);
  layout.context_dim = static_cast<int64_t>(ctx[1]);
  if (latents) {
    const auto& lat = m.at(ds::kLatents).dims;
    if (lat[0] != nk) bad("latents has " + std::to_string(lat[0]) + " rows, images " + std::to_string(nk));
    layout.store_latents = true;
    layout.latent_c = static_cast<int64_t>(lat[1]);
    layout.latent_h = static_cast<int64_t>(lat[2]);
    layout.latent_w = static_cast<int64_t>(lat[3]);
  }
  return m;
}

// Reads or writes rows [row, row + count) of `d` from/to `buffer` (contiguous, row-major), in
// pieces of at most kMaxPieceBytes.
void transfer_rows(Dataset& d, int64_t row, int64_t count, void* buffer, hid_t dxpl, bool write,
                   const h5::Site& file_site) {
  const h5::Site site = file_site.at(d.name);
  const size_t rank = d.dims.size();
  int64_t row_elems = 1;
  for (size_t i = 1; i < rank; ++i) row_elems *= static_cast<int64_t>(d.dims[i]);
  const int64_t row_bytes = row_elems * static_cast<int64_t>(c10::elementSize(d.dtype));
  const int64_t rows_per_piece = std::max<int64_t>(1, kMaxPieceBytes / std::max<int64_t>(1, row_bytes));
  std::vector<hsize_t> start(rank, 0), extent(d.dims);
  for (int64_t done = 0; done < count;) {
    const int64_t m = std::min(rows_per_piece, count - done);
    start[0] = static_cast<hsize_t>(row + done);
    extent[0] = static_cast<hsize_t>(m);
    ADAPTDIFF_H5(site, H5Sselect_hyperslab, d.fspace.get(), H5S_SELECT_SET, start.data(), nullptr, extent.data(),
                 nullptr);
    h5::Handle mspace =
        ADAPTDIFF_H5_OPEN(site, H5Sclose, H5Screate_simple, static_cast<int>(rank), extent.data(), nullptr);
    char* ptr = static_cast<char*>(buffer) + done * row_bytes;
    if (write) {
      ADAPTDIFF_H5(site, H5Dwrite, d.dset.get(), d.mem_type, mspace.get(), d.fspace.get(), dxpl, ptr);
    } else {
      ADAPTDIFF_H5(site, H5Dread, d.dset.get(), d.mem_type, mspace.get(), d.fspace.get(), dxpl, ptr);
    }
    done += m;
  }
}

// ---- attributes ---------------------------------------------------------------------------------------

void write_string_attribute(hid_t loc, const std::string& name, const std::string& value, const h5::Site& file_site) {
  const h5::Site site = file_site.at("attribute " + name);
  h5::Handle type = ADAPTDIFF_H5_OPEN(site, H5Tclose, H5Tcopy, H5T_C_S1);
  ADAPTDIFF_H5(site, H5Tset_size, type.get(), H5T_VARIABLE);
  ADAPTDIFF_H5(site, H5Tset_cset, type.get(), H5T_CSET_UTF8);
  h5::Handle space = ADAPTDIFF_H5_OPEN(site, H5Sclose, H5Screate, H5S_SCALAR);
  h5::Handle attr =
      ADAPTDIFF_H5_OPEN(site, H5Aclose, H5Acreate2, loc, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT);
  const char* data = value.c_str();
  ADAPTDIFF_H5(site, H5Awrite, attr.get(), type.get(), &data);
  attr.close();
}

namespace {

herr_t collect_attribute_name(hid_t /*loc*/, const char* name, const H5A_info_t* /*info*/, void* client) {
  static_cast<std::vector<std::string>*>(client)->emplace_back(name);
  return 0;
}

std::vector<std::string> attribute_names(hid_t loc, const h5::Site& site) {
  std::vector<std::string> names;
  ADAPTDIFF_H5(site, H5Aiterate2, loc, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_attribute_name, &names);
  return names;
}

// Frees a variable-length string that HDF5 allocated (on every path).
struct VlStringGuard {
  char* ptr = nullptr;
  ~VlStringGuard() {
    if (ptr != nullptr && H5free_memory(ptr) < 0) log::warn("io: H5free_memory failed for a string attribute");
  }
};

// Reads attribute `name` when it is a single (scalar or 1-element) string; returns false otherwise.
bool read_string_attribute(hid_t loc, const std::string& name, std::string& out, const h5::Site& file_site) {
  const h5::Site site = file_site.at("attribute " + name);
  h5::Handle attr = ADAPTDIFF_H5_OPEN(site, H5Aclose, H5Aopen, loc, name.c_str(), H5P_DEFAULT);
  h5::Handle ftype = ADAPTDIFF_H5_OPEN(site, H5Tclose, H5Aget_type, attr.get());
  if (h5::type_class(ftype.get(), site) != H5T_STRING) return false;
  h5::Handle space = ADAPTDIFF_H5_OPEN(site, H5Sclose, H5Aget_space, attr.get());
  if (ADAPTDIFF_H5(site, H5Sget_simple_extent_npoints, space.get()) != 1) return false;
  if (ADAPTDIFF_H5(site, H5Tis_variable_str, ftype.get()) > 0) {
    const H5T_cset_t cset = h5::type_cset(ftype.get(), site);
    h5::Handle mtype = ADAPTDIFF_H5_OPEN(site, H5Tclose, H5Tcopy, H5T_C_S1);
    ADAPTDIFF_H5(site, H5Tset_size, mtype.get(), H5T_VARIABLE);
    ADAPTDIFF_H5(site, H5Tset_cset, mtype.get(), cset);
    VlStringGuard guard;
    ADAPTDIFF_H5(site, H5Aread, attr.get(), mtype.get(), &guard.ptr);
    out = guard.ptr != nullptr ? guard.ptr : "";
    return true;
  }
  const size_t size = h5::type_size(ftype.get(), site);
  std::string buf(size, '\0');
  ADAPTDIFF_H5(site, H5Aread, attr.get(), ftype.get(), buf.data());
  const H5T_str_t pad = h5::type_strpad(ftype.get(), site);
  const size_t nul = buf.find('\0');
  if (nul != std::string::npos) buf.resize(nul);
  if (pad == H5T_STR_SPACEPAD) buf.erase(buf.find_last_not_of(' ') + 1);
  out = std::move(buf);
  return true;
}

}  // namespace

std::string string_attribute_of(hid_t file, const std::string& name, const h5::Site& site) {
  const auto names = attribute_names(file, site);
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    std::string present;
    for (const auto& n : names) present += (present.empty() ? "" : ", ") + n;
    throw IoError(site.op() + ": attribute '" + name + "' not found in '" + site.file() +
                  "'; root attributes: " + (present.empty() ? "(none)" : present));
  }
  std::string value;
  if (!read_string_attribute(file, name, value, site)) {
    throw IoError(site.op() + ": attribute '" + name + "' in '" + site.file() + "' is not a single string");
  }
  return value;
}

std::map<std::string, std::string> string_attributes_of(hid_t file, const h5::Site& site) {
  std::map<std::string, std::string> out;
  for (const auto& name : attribute_names(file, site)) {
    std::string value;
    if (read_string_attribute(file, name, value, site)) out.emplace(name, std::move(value));
  }
  return out;
}

void check_tensor(const std::string& op, const char* what, const torch::Tensor& t, torch::ScalarType dtype,
                  const char* dtype_name, const std::vector<int64_t>& tail) {
  bool ok = t.defined() && t.device().is_cpu() && t.scalar_type() == dtype &&
            t.dim() == static_cast<int64_t>(tail.size()) + 1;
  for (size_t i = 0; ok && i < tail.size(); ++i) ok = t.size(static_cast<int64_t>(i) + 1) == tail[i];
  if (ok) return;
  std::vector<int64_t> expected{-1};
  expected.insert(expected.end(), tail.begin(), tail.end());
  const std::string want = "[n" + shape_text(expected).substr(3);  // "[-1, ..." -> "[n, ..."
  std::string got = "an undefined tensor";
  if (t.defined()) {
    got = std::string(c10::toString(t.scalar_type())) + " " + shape_text(t.sizes().vec()) + " on " + t.device().str();
  }
  throw IoError(op + ": " + what + " must be a CPU tensor of dtype " + dtype_name + " and shape " + want +
                ", got " + got);
}

}  // namespace format
}  // namespace adaptdiff::io
