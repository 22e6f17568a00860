#pragma once
// The model side of a run: denoiser, decoder, noise schedule and the shapes derived from them.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/run_config.hpp"
#include "model/loader.hpp"
#include "sampler/schedule.hpp"

namespace adaptdiff::dist {
class Comm;
}

namespace adaptdiff::job {

/// Everything the sampling loop needs from the model side.
struct ModelBundle {
  std::shared_ptr<model::Denoiser> denoiser;
  std::shared_ptr<model::LatentDecoder> decoder;
  sampler::Schedule schedule;
  std::vector<int64_t> latent_shape;  ///< {C, h, w}
  int64_t image_height = 0, image_width = 0;
  int64_t context_dim = 512;
  std::string architecture;  ///< canonical text of the model file's values (idiff-face), for the fingerprint
};

/// The device of this rank: the CPU, or CUDA device local_rank % devices for run.device = auto/cuda when
/// LibTorch sees CUDA. Throws ConfigError for run.device = "cuda" without a CUDA device.
torch::Device pick_device(const config::RunConfig& cfg, const dist::Comm& comm);

/// Loads (or, for model.init = "random", builds with seeded weights) the model of `cfg` on `device`, in the
/// arithmetic of run.precision (bf16: native model only, ModelError otherwise or without a bf16 path).
/// Throws ConfigError for a missing file or a context width other than identities.context_dim,
/// ModelError for a checkpoint that does not fit the architecture.
ModelBundle load_model(const config::RunConfig& cfg, torch::Device device);

}  // namespace adaptdiff::job
