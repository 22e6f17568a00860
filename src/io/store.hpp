#pragma once
// The output file: ONE HDF5 file written by all ranks through MPI-IO (OutputStore), and a serial
// reader of it for tests and the status/summary tools (StoreReader).
//
// Layout (all datasets created at full size up front, contiguous, allocated early, never filled, so
// the file's metadata does not change after create() and every later write is raw data only):
//   images               uint8   [N*K, H, W, 3]   RGB, row r = identity r / K, sample r % K (by convention)
//   identity             int64   [N*K]            identity index of each image row
//   sample_index         int64   [N*K]            sample number of each image row within its identity
//   contexts             float32 [N, D]           identity context (embedding) of each identity
//   negative_index       int64   [N]              identity chosen as negative context for each identity
//   negative_similarity  float32 [N]              cosine similarity of that negative
//   latents (optional)   float32 [N*K, C, h, w]   final latents x_0 before decoding
//   sample_checksum      int64   [N*K]            progress record (0 = not done)
//   compute_batch_size   int64   [N*K]            batch size of the grid the sample was computed in
// plus root string attributes (variable-length UTF-8, readable by h5py as str and by h5dump).
// Rows that no rank wrote hold unspecified bytes (no fill value is written).
//
// Writes are independent (non-collective) hyperslab writes: ranks with different amounts of work,
// or none, never wait for each other. create/open_existing/flush/close are collective.
#include <mpi.h>
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace adaptdiff::io {

/// Names of the datasets of an output file.
namespace store_dataset {
inline constexpr const char* kImages = "images";
inline constexpr const char* kIdentity = "identity";
inline constexpr const char* kSampleIndex = "sample_index";
inline constexpr const char* kContexts = "contexts";
inline constexpr const char* kNegativeIndex = "negative_index";
inline constexpr const char* kNegativeSimilarity = "negative_similarity";
inline constexpr const char* kLatents = "latents";
/// Progress record: int64 [N*K]; 0 = sample not done, else the checksum of its stored images and labels
/// (written only after them; see sample_checksum() in job).
inline constexpr const char* kSampleChecksum = "sample_checksum";
/// int64 [N*K]: the compute batch size of the grid each sample was computed in (see job/plan.hpp); written
/// with its labels, before the record. Absent in files of layout version 2.
inline constexpr const char* kComputeBatchSize = "compute_batch_size";
}  // namespace store_dataset

/// Sizes of an output file. All counts must be >= 1 (latent sizes only when store_latents).
struct StoreLayout {
  int64_t identities = 0;           ///< N: identities (contexts) in the run
  int64_t images_per_identity = 0;  ///< K: images generated per identity
  int64_t height = 0;               ///< image height in pixels
  int64_t width = 0;                ///< image width in pixels
  int64_t context_dim = 512;        ///< D: width of an identity context
  bool store_latents = false;       ///< also create the `latents` dataset
  int64_t latent_c = 0;             ///< latent channels C (store_latents only)
  int64_t latent_h = 0;             ///< latent height h (store_latents only)
  int64_t latent_w = 0;             ///< latent width w (store_latents only)

  /// N*K: rows of images/identity/sample_index/latents.
  int64_t image_rows() const { return identities * images_per_identity; }
  bool operator==(const StoreLayout& o) const;
  bool operator!=(const StoreLayout& o) const { return !(*this == o); }
};

/// How output files are opened.
struct StoreOptions {
  /// false disables HDF5 file locking for this file (H5Pset_file_locking on HDF5 >= 1.10.7/1.12.1,
  /// else HDF5_USE_FILE_LOCKING=FALSE in the environment). Needed on NFS/Lustre mounts where locking
  /// fails with errno 37 (ENOLCK) or 524. true keeps HDF5's default (which honours the env variable).
  bool file_locking = true;
};

/// The output file of a run, open for writing on every rank of a communicator. Move-only; a moved-from
/// store may only be destroyed or assigned to.
/// Not thread-safe: one thread per rank uses it.
class OutputStore {
 public:
  /// COLLECTIVE over `comm`: every rank must call it with identical arguments (checked: a digest of
  /// the arguments is compared across ranks, IoError on mismatch). Creates `path`, truncating an
  /// existing file (the caller decides about overwriting), with all datasets of `layout` (see the top
  /// of this header) and the root string attributes `root_string_attributes` (name -> UTF-8 value;
  /// values must not contain NUL bytes). `comm` is lent (HDF5 keeps its own duplicate).
  /// Throws IoError on every rank when any rank fails (invalid layout, missing/non-writable directory,
  /// file locking — with a "---> HINT:" line —, HDF5 failure); the failing rank's message names
  /// the path and the HDF5 reason, the others say that another rank failed. A failure after the
  /// file was created leaves a partial file behind.
  static OutputStore create(MPI_Comm comm, const std::string& path, const StoreLayout& layout,
                            const std::map<std::string, std::string>& root_string_attributes,
                            const StoreOptions& options = {});

  /// COLLECTIVE: opens an existing output file read-write (for restarts); the layout is read from the
  /// datasets. Throws IoError on every rank when the file is missing/unopenable or is not an adaptdiff
  /// output file (missing dataset, wrong type or inconsistent sizes — the message says which).
  static OutputStore open_existing(MPI_Comm comm, const std::string& path, const StoreOptions& options = {});

  OutputStore(OutputStore&& other) noexcept;
  OutputStore& operator=(OutputStore&& other) noexcept;
  OutputStore(const OutputStore&) = delete;
  OutputStore& operator=(const OutputStore&) = delete;
  /// Closes if still open (collective, see close()); never throws — a failure is logged. Let it run
  /// on all ranks together; on an error path prefer aborting the communicator.
  ~OutputStore();

  const StoreLayout& layout() const;
  const std::string& path() const;
  bool is_open() const;

  /// Writes image rows [row_begin, row_begin + n). images: uint8 CPU [n, H, W, 3] (made contiguous
  /// if needed). Independent (non-collective). n == 0 does nothing. Throws IoError for a wrong
  /// dtype/device/shape, rows outside [0, N*K) ("store::write_images: rows [a, b) outside [0, N*K)"),
  /// a closed store, or an HDF5 failure.
  void write_images(int64_t row_begin, const torch::Tensor& images);

  /// Writes identity and sample_index rows [row_begin, row_begin + n): both int64 CPU [n].
  /// Independent. Errors as write_images.
  void write_samples_labels(int64_t row_begin, const torch::Tensor& identity, const torch::Tensor& sample_index);

  /// Writes compute_batch_size rows [row_begin, row_begin + n): int64 CPU [n]. Independent. Errors as
  /// write_images; IoError also for a file without that dataset (layout version 2).
  void write_compute_batch_sizes(int64_t row_begin, const torch::Tensor& batch_sizes);

  /// Writes latent rows [row_begin, row_begin + n): float32 CPU [n, C, h, w]. Independent. Throws
  /// IoError also when the store was created without latents.
  void write_latents(int64_t row_begin, const torch::Tensor& latents);

  /// Writes contexts of identities [id_begin, id_begin + n): float32 CPU [n, D]. Independent.
  void write_contexts(int64_t id_begin, const torch::Tensor& contexts);

  /// Writes negative_index (int64 CPU [n]) and negative_similarity (float32 CPU [n]) of identities
  /// [id_begin, id_begin + n). Independent.
  void write_negatives(int64_t id_begin, const torch::Tensor& index, const torch::Tensor& similarity);
  /// Progress record rows [row_begin, row_begin+n): int64 [n] (0 = not done). Independent write.
  void write_checksums(int64_t row_begin, const torch::Tensor& checksums);

  /// Independent read of rows [row_begin, row_begin+n) of dataset `name` (images, identity, sample_index,
  /// sample_checksum, ...) as a CPU tensor of the dataset's dtype. Throws IoError for bad names/ranges.
  torch::Tensor read_rows(const char* name, int64_t row_begin, int64_t n) const;

  /// Value of the root string attribute `name`. Throws IoError when it is missing (the message lists
  /// the attributes present) or not a string. Not collective.
  std::string string_attribute(const std::string& name) const;
  /// All root attributes of string type (others are skipped). Not collective.
  std::map<std::string, std::string> string_attributes() const;

  /// COLLECTIVE: H5Fflush(H5F_SCOPE_GLOBAL) — all data written so far by all ranks reaches the file.
  void flush();
  /// COLLECTIVE: closes datasets and the file. Idempotent. Throws IoError on failure; writes after
  /// close throw IoError.
  void close();

 private:
  struct Impl;
  explicit OutputStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

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
