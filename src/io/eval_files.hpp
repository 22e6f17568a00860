#pragma once
// Serial HDF5 files of adaptdiff-eval: the embeddings file (`embeddings` float32 [N, D], `identity` int64 [N]) it
// reads and writes, and the scores file (`genuine`, `impostor` float64 [n]) it writes for the histogram script.
// No MPI: one process reads or writes each file.
#include <torch/types.h>

#include <string>
#include <vector>

namespace adaptdiff::io {

/// Embeddings of face images with their identity labels.
struct EmbeddingsFile {
  torch::Tensor embeddings;  ///< float32 CPU [N, D]
  torch::Tensor identity;    ///< int64 CPU [N]
};

/// Reads datasets `embeddings` and `identity` of `path` with their stored types: `embeddings` must be a
/// 32-bit float dataset of rank 2 and `identity` a signed 64-bit integer dataset of rank 1 (shapes are checked
/// against each other by the caller). Throws InputError naming file and dataset for a missing dataset (listing
/// the root members) or another type/rank; IoError when the file cannot be opened or read.
EmbeddingsFile read_embeddings_file(const std::string& path);

/// Writes `path` (replacing it, through write_small_file: temp file + rename) with `embeddings` (float32 CPU
/// [N, D]) and `identity` (int64 CPU [N]). Throws IoError naming the file when it cannot be written.
void write_embeddings_file(const std::string& path, const EmbeddingsFile& data);

/// Writes `path` (as write_embeddings_file) with 1-D float64 datasets `genuine` and `impostor`. Throws IoError.
void write_scores_file(const std::string& path, const std::vector<double>& genuine,
                       const std::vector<double>& impostor);

}  // namespace adaptdiff::io
