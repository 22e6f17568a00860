#pragma once
// The output file (store_layout.hpp): ONE HDF5 file written by all ranks through MPI-IO. The serial reader is
// store_reader.hpp.
//
// Writes are independent (non-collective) hyperslab writes: ranks with different amounts of work,
// or none, never wait for each other. create/open_existing/flush/close are collective; their failures
// are agreed across ranks (dist/agree.hpp): every rank throws the lowest failing rank's IoError.
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "io/store_layout.hpp"

namespace adaptdiff::dist {
class Comm;
}

namespace adaptdiff::io {

/// The output file of a run, open for writing on every rank of a communicator. Move-only; a moved-from
/// store may only be destroyed or assigned to.
/// Not thread-safe: one thread per rank uses it.
class OutputStore {
 public:
  /// COLLECTIVE over `comm`: every rank must call it with identical arguments (checked: a digest of
  /// the arguments is compared across ranks, IoError on mismatch). Creates `path`, truncating an
  /// existing file (the caller decides about overwriting), with all datasets of `layout` (see the top
  /// of this header) and the root string attributes `root_string_attributes` (name -> UTF-8 value;
  /// values must not contain NUL bytes). `comm` is lent (HDF5 keeps its own duplicate). Failures are agreed through dist::agree.
  /// Throws IoError on every rank when any rank fails (invalid layout, missing/non-writable directory,
  /// file locking — with a "---> HINT:" line —, HDF5 failure); the failing rank's message names
  /// the path and the HDF5 reason, the others say that another rank failed. A failure after the
  /// file was created leaves a partial file behind.
  static OutputStore create(const dist::Comm& comm, const std::string& path, const StoreLayout& layout,
                            const std::map<std::string, std::string>& root_string_attributes,
                            const StoreOptions& options = {});

  /// COLLECTIVE: opens an existing output file read-write (for restarts); the layout is read from the
  /// datasets. Throws IoError on every rank when the file is missing/unopenable or is not an adaptdiff
  /// output file (missing dataset, wrong type or inconsistent sizes — the message says which).
  static OutputStore open_existing(const dist::Comm& comm, const std::string& path, const StoreOptions& options = {});

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
  /// Sets sample_durable to 1 for rows [row_begin, row_begin+n): call only after a flush() that completed after
  /// their records were written. Independent write; does nothing in files without that dataset.
  void mark_durable(int64_t row_begin, int64_t n);
  /// Whether the open file has dataset `name` (optional ones: latents, compute_batch_size, sample_durable).
  bool has_dataset(const char* name) const;

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

}  // namespace adaptdiff::io
