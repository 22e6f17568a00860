#include "io/store.hpp"

#include <torch/torch.h>

#include <exception>
#include <filesystem>
#include <sstream>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/log.hpp"
#include "dist/agree.hpp"
#include "dist/comm.hpp"
#include "io/sha256.hpp"
#include "io/store_format.hpp"

namespace adaptdiff::io {

using namespace format;  // the shared pieces of the file format (internal to io)

namespace {

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

}  // namespace

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

OutputStore OutputStore::create(const dist::Comm& comm, const std::string& path, const StoreLayout& layout,
                                const std::map<std::string, std::string>& root_string_attributes,
                                const StoreOptions& options) {
  const std::string op = "store::create";
  h5::silence_error_printing();
  validate_layout(layout, op + "('" + path + "')");

  // Identical arguments on every rank? (Otherwise the collective HDF5 calls below hang or corrupt.)
  const std::string digest = argument_digest(path, layout, root_string_attributes, options);
  const bool same = comm.bcast(digest, 0) == digest;
  if (comm.allreduce(same ? 1 : 0, dist::ReduceOp::kMin) == 0) {
    throw IoError(op + ": ranks passed different arguments (path, layout, attributes or options) for '" + path +
                  "'; create() is collective and needs identical arguments on every rank");
  }

  auto impl = std::make_unique<Impl>();
  impl->path = path;
  const h5::Site site(op, path);
  dist::agree(comm, op.c_str(), [&] {
    h5::Handle fapl = make_mpio_fapl(comm.handle(), options, site);
    const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
    if (id < 0) site.fail("H5Fcreate", __FILE__, __LINE__, h5::file_open_hint(true));
    impl->file = h5::Handle(id, H5Fclose, "H5Fclose", site);
  });
  dist::agree(comm, op.c_str(), [&] {
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
    create_dataset(f, ds::kSampleDurable, H5T_STD_U8LE, {nk}, site);
    if (layout.store_latents) {
      create_dataset(f, ds::kLatents, H5T_IEEE_F32LE, {nk, layout.latent_c, layout.latent_h, layout.latent_w}, site);
    }
    for (const auto& [name, value] : root_string_attributes) write_string_attribute(f, name, value, site);
    impl->open_datasets(site);
  });
  // The progress record and the durable marks start all-zero (no fill value is written): each rank zeroes a
  // block of them, then a collective flush puts metadata and record on disk before any sample is written.
  dist::agree(comm, op.c_str(), [&] {
    const int rank = comm.rank(), size = comm.size();
    const int64_t nk = layout.image_rows();
    const int64_t begin = nk * rank / size, end = nk * (rank + 1) / size;
    if (end > begin) {
      impl->write(op, ds::kSampleChecksum, begin, torch::zeros({end - begin}, torch::kInt64));
      impl->write(op, ds::kSampleDurable, begin, torch::zeros({end - begin}, torch::kUInt8));
    }
  });
  OutputStore store(std::move(impl));
  store.flush();
  return store;
}

OutputStore OutputStore::open_existing(const dist::Comm& comm, const std::string& path, const StoreOptions& options) {
  const std::string op = "store::open_existing";
  h5::silence_error_printing();
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  const h5::Site site(op, path);
  dist::agree(comm, op.c_str(), [&] {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw IoError(op + ": file '" + path + "' does not exist");
    h5::Handle fapl = make_mpio_fapl(comm.handle(), options, site);
    const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl.get());
    if (id < 0) site.fail("H5Fopen", __FILE__, __LINE__, h5::file_open_hint(false));
    impl->file = h5::Handle(id, H5Fclose, "H5Fclose", site);
  });
  dist::agree(comm, op.c_str(), [&] { impl->open_datasets(site); });
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

void OutputStore::mark_durable(int64_t row_begin, int64_t n) {
  const std::string op = "store::mark_durable";
  if (!has_dataset(ds::kSampleDurable)) return;
  const torch::Tensor t = impl_->prepare(op, ds::kSampleDurable, "marks", row_begin, torch::ones({n}, torch::kUInt8));
  if (t.defined()) impl_->write(op, ds::kSampleDurable, row_begin, t);
}

bool OutputStore::has_dataset(const char* name) const {
  return is_open() && impl_->datasets.count(name) != 0;
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

}  // namespace adaptdiff::io
