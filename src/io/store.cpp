#include "io/store.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <exception>
#include <filesystem>
#include <sstream>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/log.hpp"
#include "io/h5_handle.hpp"
#include "io/sha256.hpp"

namespace adaptdiff::io {
namespace {

namespace ds = store_dataset;

// Largest piece of one H5Dwrite/H5Dread call: keeps every MPI-IO request far below 2 GiB.
constexpr int64_t kMaxPieceBytes = int64_t{1} << 30;

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

void mpi_check(int rc, const char* call, const std::string& op) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
  throw CommError(op + ": " + call + " failed: " + std::string(text, static_cast<size_t>(len)));
}

// Collective: every rank learns whether every rank succeeded. A rank that failed rethrows its own
// error; the others throw an IoError saying that another rank failed.
void agree(MPI_Comm comm, const std::exception_ptr& local_error, const std::string& op, const std::string& path) {
  int ok = local_error ? 0 : 1;
  int all_ok = 0;
  mpi_check(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm), "MPI_Allreduce", op);
  if (local_error) std::rethrow_exception(local_error);
  if (all_ok == 0) throw IoError(op + ": failed on another rank for '" + path + "' (see that rank's message)");
}

template <class F>
void run_collectively(MPI_Comm comm, const std::string& op, const std::string& path, F&& step) {
  std::exception_ptr error;
  try {
    step();
  } catch (...) {
    error = std::current_exception();
  }
  agree(comm, error, op, path);
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

// One open dataset with its file dataspace (reselected for every hyperslab).
struct Dataset {
  std::string name;
  h5::Handle dset;
  h5::Handle fspace;
  std::vector<hsize_t> dims;
  hid_t mem_type = H5I_INVALID_HID;      // H5T_NATIVE_* (library-owned, never closed)
  torch::ScalarType dtype = torch::kUInt8;
  const char* dtype_name = "";

  int64_t rows() const { return static_cast<int64_t>(dims.at(0)); }
  std::vector<int64_t> tail() const {
    return std::vector<int64_t>(dims.begin() + 1, dims.end());
  }
};

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
  for (const char* name : {ds::kIdentity, ds::kSampleIndex, ds::kSampleChecksum, ds::kComputeBatchSize}) {
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

// Digest of create()'s arguments, compared across ranks.
std::string argument_digest(const std::string& path, const StoreLayout& l,
                            const std::map<std::string, std::string>& attrs, const StoreOptions& o) {
  std::ostringstream s;
  s << path << '\0' << l.identities << ',' << l.images_per_identity << ',' << l.height << ',' << l.width << ','
    << l.context_dim << ',' << l.store_latents << ',' << l.latent_c << ',' << l.latent_h << ',' << l.latent_w << ','
    << o.file_locking << '\0';
  for (const auto& [k, v] : attrs) s << k.size() << ':' << k << v.size() << ':' << v;
  return sha256_bytes(s.str());
}

h5::Handle make_mpio_fapl(MPI_Comm comm, const StoreOptions& options, const h5::Site& site) {
  h5::Handle fapl = ADAPTDIFF_H5_OPEN(site, H5Pclose, H5Pcreate, H5P_FILE_ACCESS);
  ADAPTDIFF_H5(site, H5Pset_fapl_mpio, fapl.get(), comm, MPI_INFO_NULL);
  h5::apply_file_locking(fapl.get(), options.file_locking, site);
  return fapl;
}

void check_tensor(const std::string& op, const char* what, const torch::Tensor& t, torch::ScalarType dtype,
                  const char* dtype_name, const std::vector<int64_t>& tail) {
  bool ok = t.defined() && t.device().is_cpu() && t.scalar_type() == dtype &&
            t.dim() == static_cast<int64_t>(tail.size()) + 1;
  for (size_t i = 0; ok && i < tail.size(); ++i) ok = t.size(static_cast<int64_t>(i) + 1) == tail[i];
  if (ok) return;
  std::vector<int64_t> expected{-1};
  expected.insert(expected.end(), tail.begin(), tail.end());
  std::string want = shape_text(expected);
  want.replace(1, 2, "n");
  std::string got = "an undefined tensor";
  if (t.defined()) {
    got = std::string(c10::toString(t.scalar_type())) + " " + shape_text(t.sizes().vec()) + " on " + t.device().str();
  }
  throw IoError(op + ": " + what + " must be a CPU tensor of dtype " + dtype_name + " and shape " + want +
                ", got " + got);
}

}  // namespace

bool StoreLayout::operator==(const StoreLayout& o) const {
  return identities == o.identities && images_per_identity == o.images_per_identity && height == o.height &&
         width == o.width && context_dim == o.context_dim && store_latents == o.store_latents &&
         (!store_latents || (latent_c == o.latent_c && latent_h == o.latent_h && latent_w == o.latent_w));
}

// ---- OutputStore ------------------------------------------------------------------------------------------

struct OutputStore::Impl {
  std::string path;
  StoreLayout layout;
  h5::Handle file;  // declared first: destroyed after the datasets
  h5::Handle dxpl;
  std::map<std::string, Dataset> datasets;

  h5::Site site(const std::string& op) const { return h5::Site(op, path); }

  Dataset& dataset(const std::string& op, const char* name) {
    if (!file) throw IoError(op + ": the store '" + path + "' is closed");
    auto it = datasets.find(name);
    if (it == datasets.end()) {
      throw IoError(op + ": the store '" + path + "' has no '" + name + "' dataset" +
                    (std::string(name) == ds::kLatents ? " (created with store_latents = false)" : ""));
    }
    return it->second;
  }

  // Validates `t` against dataset `name` and the row range; returns the contiguous tensor or an
  // undefined one for a zero-row write.
  torch::Tensor prepare(const std::string& op, const char* name, const char* what, int64_t row_begin,
                        const torch::Tensor& t) {
    Dataset& d = dataset(op, name);
    check_tensor(op, what, t, d.dtype, d.dtype_name, d.tail());
    const int64_t n = t.size(0);
    if (row_begin < 0 || row_begin > d.rows() - n) {
      throw IoError(op + ": rows " + range_text(row_begin, row_begin + n) + " outside [0, " +
                    std::to_string(d.rows()) + ") of '" + name + "' in '" + path + "'");
    }
    return n == 0 ? torch::Tensor() : t.contiguous();
  }

  void write(const std::string& op, const char* name, int64_t row_begin, const torch::Tensor& t) {
    Dataset& d = dataset(op, name);
    transfer_rows(d, row_begin, t.size(0), t.data_ptr(), dxpl.get(), /*write=*/true, site(op));
  }

  void open_datasets(const h5::Site& s) {
    datasets = open_all(file.get(), s, layout);
    dxpl = ADAPTDIFF_H5_OPEN(s, H5Pclose, H5Pcreate, H5P_DATASET_XFER);
    ADAPTDIFF_H5(s, H5Pset_dxpl_mpio, dxpl.get(), H5FD_MPIO_INDEPENDENT);
  }
};

OutputStore::OutputStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OutputStore::OutputStore(OutputStore&& other) noexcept = default;
OutputStore& OutputStore::operator=(OutputStore&& other) noexcept {
  if (this != &other) {
    if (is_open()) {
      try {
        close();
      } catch (const std::exception& e) {
        log::error("store: closing '{}' on move-assignment failed: {}", impl_->path, e.what());
      }
    }
    impl_ = std::move(other.impl_);
  }
  return *this;
}

OutputStore::~OutputStore() {
  if (!is_open()) return;
  try {
    close();
  } catch (const std::exception& e) {
    try {
      log::error("store: closing '{}' failed: {}", impl_->path, e.what());
    } catch (...) {
    }
  } catch (...) {
  }
}

OutputStore OutputStore::create(MPI_Comm comm, const std::string& path, const StoreLayout& layout,
                                const std::map<std::string, std::string>& root_string_attributes,
                                const StoreOptions& options) {
  const std::string op = "store::create";
  h5::silence_error_printing();
  validate_layout(layout, op + "('" + path + "')");

  // Identical arguments on every rank? (Otherwise the collective HDF5 calls below hang or corrupt.)
  const std::string digest = argument_digest(path, layout, root_string_attributes, options);
  std::string root_digest = digest;
  mpi_check(MPI_Bcast(root_digest.data(), static_cast<int>(root_digest.size()), MPI_CHAR, 0, comm), "MPI_Bcast", op);
  int same = root_digest == digest ? 1 : 0, all_same = 0;
  mpi_check(MPI_Allreduce(&same, &all_same, 1, MPI_INT, MPI_MIN, comm), "MPI_Allreduce", op);
  if (all_same == 0) {
    throw IoError(op + ": ranks passed different arguments (path, layout, attributes or options) for '" + path +
                  "'; create() is collective and needs identical arguments on every rank");
  }

  auto impl = std::make_unique<Impl>();
  impl->path = path;
  const h5::Site site(op, path);
  run_collectively(comm, op, path, [&] {
    h5::Handle fapl = make_mpio_fapl(comm, options, site);
    const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
    if (id < 0) site.fail("H5Fcreate", __FILE__, __LINE__, h5::file_open_hint(true));
    impl->file = h5::Handle(id, H5Fclose, "H5Fclose", site);
  });
  run_collectively(comm, op, path, [&] {
    const hid_t f = impl->file.get();
    const int64_t nk = layout.image_rows(), n = layout.identities;
    create_dataset(f, ds::kImages, H5T_STD_U8LE, {nk, layout.height, layout.width, 3}, site);
    create_dataset(f, ds::kIdentity, H5T_STD_I64LE, {nk}, site);
    create_dataset(f, ds::kSampleIndex, H5T_STD_I64LE, {nk}, site);
    create_dataset(f, ds::kContexts, H5T_IEEE_F32LE, {n, layout.context_dim}, site);
    create_dataset(f, ds::kNegativeIndex, H5T_STD_I64LE, {n}, site);
    create_dataset(f, ds::kNegativeSimilarity, H5T_IEEE_F32LE, {n}, site);
    create_dataset(f, ds::kSampleChecksum, H5T_STD_I64LE, {nk}, site);
    create_dataset(f, ds::kComputeBatchSize, H5T_STD_I64LE, {nk}, site);
    if (layout.store_latents) {
      create_dataset(f, ds::kLatents, H5T_IEEE_F32LE, {nk, layout.latent_c, layout.latent_h, layout.latent_w}, site);
    }
    for (const auto& [name, value] : root_string_attributes) write_string_attribute(f, name, value, site);
    impl->open_datasets(site);
  });
  // The progress record starts all-zero (no fill value is written): each rank zeroes a block of it, then
  // a collective flush puts metadata and record on disk before any sample is written.
  run_collectively(comm, op, path, [&] {
    int rank = 0, size = 1;
    mpi_check(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank", op);
    mpi_check(MPI_Comm_size(comm, &size), "MPI_Comm_size", op);
    const int64_t nk = layout.image_rows();
    const int64_t begin = nk * rank / size, end = nk * (rank + 1) / size;
    if (end > begin) impl->write(op, ds::kSampleChecksum, begin, torch::zeros({end - begin}, torch::kInt64));
  });
  OutputStore store(std::move(impl));
  store.flush();
  return store;
}

OutputStore OutputStore::open_existing(MPI_Comm comm, const std::string& path, const StoreOptions& options) {
  const std::string op = "store::open_existing";
  h5::silence_error_printing();
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  const h5::Site site(op, path);
  run_collectively(comm, op, path, [&] {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw IoError(op + ": file '" + path + "' does not exist");
    h5::Handle fapl = make_mpio_fapl(comm, options, site);
    const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl.get());
    if (id < 0) site.fail("H5Fopen", __FILE__, __LINE__, h5::file_open_hint(false));
    impl->file = h5::Handle(id, H5Fclose, "H5Fclose", site);
  });
  run_collectively(comm, op, path, [&] { impl->open_datasets(site); });
  return OutputStore(std::move(impl));
}

const StoreLayout& OutputStore::layout() const { return impl_->layout; }
const std::string& OutputStore::path() const { return impl_->path; }
bool OutputStore::is_open() const { return impl_ && impl_->file; }

void OutputStore::write_images(int64_t row_begin, const torch::Tensor& images) {
  const std::string op = "store::write_images";
  const torch::Tensor t = impl_->prepare(op, ds::kImages, "images", row_begin, images);
  if (t.defined()) impl_->write(op, ds::kImages, row_begin, t);
}

void OutputStore::write_samples_labels(int64_t row_begin, const torch::Tensor& identity,
                                       const torch::Tensor& sample_index) {
  const std::string op = "store::write_samples_labels";
  const torch::Tensor a = impl_->prepare(op, ds::kIdentity, "identity", row_begin, identity);
  const torch::Tensor b = impl_->prepare(op, ds::kSampleIndex, "sample_index", row_begin, sample_index);
  if (identity.size(0) != sample_index.size(0)) {
    throw IoError(op + ": identity has " + std::to_string(identity.size(0)) + " rows but sample_index " +
                  std::to_string(sample_index.size(0)));
  }
  if (!a.defined()) return;
  impl_->write(op, ds::kIdentity, row_begin, a);
  impl_->write(op, ds::kSampleIndex, row_begin, b);
}

void OutputStore::write_compute_batch_sizes(int64_t row_begin, const torch::Tensor& batch_sizes) {
  const std::string op = "store::write_compute_batch_sizes";
  const torch::Tensor t = impl_->prepare(op, ds::kComputeBatchSize, "batch_sizes", row_begin, batch_sizes);
  if (t.defined()) impl_->write(op, ds::kComputeBatchSize, row_begin, t);
}

void OutputStore::write_latents(int64_t row_begin, const torch::Tensor& latents) {
  const std::string op = "store::write_latents";
  const torch::Tensor t = impl_->prepare(op, ds::kLatents, "latents", row_begin, latents);
  if (t.defined()) impl_->write(op, ds::kLatents, row_begin, t);
}

void OutputStore::write_contexts(int64_t id_begin, const torch::Tensor& contexts) {
  const std::string op = "store::write_contexts";
  const torch::Tensor t = impl_->prepare(op, ds::kContexts, "contexts", id_begin, contexts);
  if (t.defined()) impl_->write(op, ds::kContexts, id_begin, t);
}

void OutputStore::write_negatives(int64_t id_begin, const torch::Tensor& index, const torch::Tensor& similarity) {
  const std::string op = "store::write_negatives";
  const torch::Tensor a = impl_->prepare(op, ds::kNegativeIndex, "index", id_begin, index);
  const torch::Tensor b = impl_->prepare(op, ds::kNegativeSimilarity, "similarity", id_begin, similarity);
  if (index.size(0) != similarity.size(0)) {
    throw IoError(op + ": index has " + std::to_string(index.size(0)) + " rows but similarity " +
                  std::to_string(similarity.size(0)));
  }
  if (!a.defined()) return;
  impl_->write(op, ds::kNegativeIndex, id_begin, a);
  impl_->write(op, ds::kNegativeSimilarity, id_begin, b);
}

void OutputStore::write_checksums(int64_t row_begin, const torch::Tensor& checksums) {
  const std::string op = "store::write_checksums";
  const torch::Tensor t = impl_->prepare(op, ds::kSampleChecksum, "checksums", row_begin, checksums);
  if (t.defined()) impl_->write(op, ds::kSampleChecksum, row_begin, t);
}

torch::Tensor OutputStore::read_rows(const char* name, int64_t row_begin, int64_t n) const {
  const std::string op = "store::read_rows";
  if (!is_open()) throw IoError(op + ": the store is closed");
  Dataset& d = impl_->dataset(op, name);
  if (row_begin < 0 || n < 0 || row_begin > d.rows() - n) {
    throw IoError(op + ": rows " + range_text(row_begin, row_begin + n) + " outside [0, " +
                  std::to_string(d.rows()) + ") of '" + name + "' in '" + impl_->path + "'");
  }
  std::vector<int64_t> shape(d.dims.begin(), d.dims.end());
  shape[0] = n;
  torch::Tensor out = torch::empty(shape, d.dtype);
  if (n > 0) transfer_rows(d, row_begin, n, out.data_ptr(), impl_->dxpl.get(), /*write=*/false, impl_->site(op));
  return out;
}

std::string OutputStore::string_attribute(const std::string& name) const {
  const std::string op = "store::string_attribute";
  if (!is_open()) throw IoError(op + ": the store is closed");
  return string_attribute_of(impl_->file.get(), name, impl_->site(op));
}

std::map<std::string, std::string> OutputStore::string_attributes() const {
  const std::string op = "store::string_attributes";
  if (!is_open()) throw IoError(op + ": the store is closed");
  return string_attributes_of(impl_->file.get(), impl_->site(op));
}

void OutputStore::flush() {
  const std::string op = "store::flush";
  if (!is_open()) throw IoError(op + ": the store is closed");
  const h5::Site site = impl_->site(op);
  ADAPTDIFF_H5(site, H5Fflush, impl_->file.get(), H5F_SCOPE_GLOBAL);
}

void OutputStore::close() {
  if (!is_open()) return;
  // Release everything even when one close fails; report the first failure.
  std::exception_ptr first;
  auto attempt = [&](h5::Handle& h) {
    try {
      h.close();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  };
  for (auto& [name, d] : impl_->datasets) {
    attempt(d.fspace);
    attempt(d.dset);
  }
  impl_->datasets.clear();
  attempt(impl_->dxpl);
  attempt(impl_->file);  // collective: data reaches the file here
  if (first) std::rethrow_exception(first);
}

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
