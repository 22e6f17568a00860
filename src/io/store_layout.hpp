#pragma once
// The output file's format: dataset names, sizes and open options, shared by the parallel writer
// (store.hpp, MPI) and the serial reader (store_reader.hpp, no MPI).
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
//   sample_durable       uint8   [N*K]            1 = the sample's record was on disk at a completed checkpoint
// plus root string attributes (variable-length UTF-8, readable by h5py as str and by h5dump).
// Rows that no rank wrote hold unspecified bytes (no fill value is written).
#include <cstdint>

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
/// uint8 [N*K]: 1 once a collective flush completed after the sample's record was written (set right after
/// that flush), so a resume need not read the sample back to verify it; 0 otherwise (verify it). Starts
/// all-zero. Absent in older files of layout 3 (then every done sample is verified).
inline constexpr const char* kSampleDurable = "sample_durable";
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

}  // namespace adaptdiff::io
