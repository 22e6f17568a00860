#pragma once
// Face-recognition embeddings of the images of a sampling job's output file, with a user-supplied TorchScript
// model: forward(x: float32 [B, 3, 112, 112]) -> [B, D]. The preprocessing follows the usual ArcFace-style
// pipeline: resize to 112x112 (bilinear with antialias, Pillow-like), x = (pixel - 127.5) / 127.5, RGB order or
// BGR (--bgr) for models trained on images read with OpenCV.
#include <torch/types.h>

#include <cstdint>
#include <string>

namespace adaptdiff::dist {
class Comm;
}

namespace adaptdiff::eval {

/// Input side length of the face-recognition model.
inline constexpr int64_t kFrInputSize = 112;

/// uint8 images [B, H, W, 3] RGB -> float32 [B, 3, 112, 112], (x - 127.5) / 127.5, channels reversed when bgr.
/// Images of another size are resized with torch's bilinear interpolation with antialias (align_corners false),
/// applied to the pixel values before normalisation. Throws InputError for another dtype or shape.
torch::Tensor preprocess_faces(const torch::Tensor& images, bool bgr);

/// Options of the embedding pass.
struct EmbedOptions {
  std::string model_path;          ///< TorchScript file
  bool bgr = false;                ///< feed channels in BGR order
  int64_t batch_size = 64;         ///< images per forward
  std::string device = "auto";     ///< "auto" (CUDA when available), "cpu", "cuda" (GPU local_rank % count), "cuda:N"
  double progress_interval = 10.0; ///< seconds between progress lines (rank 0)
};

/// The embeddings of the done samples of an output file.
struct Embedded {
  torch::Tensor embeddings;  ///< float32 CPU [M, D], M done samples in row order
  torch::Tensor identity;    ///< int64 CPU [M]: the file's `identity` of those rows
  int64_t rows = 0;          ///< N*K rows of the file
  int64_t skipped = 0;       ///< rows not done (sample_checksum == 0), skipped
};

/// COLLECTIVE over `comm`: every rank embeds a contiguous block of the done samples of `data_h5` (read with
/// io::StoreReader: `images` uint8 [N*K, H, W, 3], `identity`, `sample_checksum`); the blocks are assembled with
/// an exact allreduce so every rank returns the same tensors. Errors are agreed across ranks (dist::agree).
/// Throws IoError (unreadable file), InputError (not an output file, no done sample, bad device), ModelError (model
/// cannot be loaded, or its output is not a finite float [B, D] with D >= 1).
Embedded embed_store(const dist::Comm& comm, const std::string& data_h5, const EmbedOptions& options);

}  // namespace adaptdiff::eval
