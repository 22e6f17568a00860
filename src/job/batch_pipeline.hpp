#pragma once
// The batch pipeline of a rank: one grid batch of sample numbers in, stored samples out -- contexts, noise,
// guided DDPM/DDIM, decoding, the writes, then the progress record.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "config/run_config.hpp"
#include "dist/partition.hpp"
#include "job/host_staging.hpp"
#include "job/model_bundle.hpp"
#include "job/phases.hpp"
#include "sampler/guidance.hpp"
#include "sampler/samplers.hpp"

namespace adaptdiff::io {
class OutputStore;
}

namespace adaptdiff::job {

/// Thrown from inside the diffusion loop when a stop signal arrived: the batch is abandoned (nothing of it is
/// marked done) and the ranks go to their agreement.
struct BatchAbandoned {};

/// Maps decoded images [B,3,H,W] f32 (~[-1,1]) to uint8 [B,H,W,3] on the CPU.
/// Ref: upstream denormalize_to_zero_to_one ((x+1)/2, clamp to [0,1]) then torchvision save_image
/// (mul(255).add_(0.5).clamp_(0,255).to(uint8), i.e. round half up).
torch::Tensor to_uint8_hwc(const torch::Tensor& image);

/// What one rank's pipeline works with. References are lent and must outlive the pipeline.
struct PipelineSetup {
  const config::RunConfig& cfg;                ///< sampler settings, run.seed, identities.offset, store_latents
  const ModelBundle& model;
  const sampler::GuidanceSchedule& guidance;
  torch::Device device;
  sampler::SamplerSpec sampler;                ///< DDPM or DDIM with its steps and eta
  int64_t batch_size = 0;                      ///< B of the grid (the file's, unless --rebatch)
  dist::Range touched;                         ///< identities whose contexts pos_rows/neg_rows hold
  torch::Tensor pos_rows;                      ///< float32 [touched, D]: p+ of those identities
  torch::Tensor neg_rows;                      ///< float32 [touched, D]: p-, undefined for strategy none
};

class BatchPipeline {
 public:
  BatchPipeline(PipelineSetup setup, io::OutputStore& store);

  /// rows: the consecutive sample numbers of one grid batch (at most B, padded to B with the last one),
  /// computed together; to_write: the increasing subset of rows to store (the pending ones). Writes images,
  /// labels, compute batch sizes (and latents), then their records. Returns to_write.size(). Throws
  /// BatchAbandoned when a stop signal arrives during sampling, IoError (with a note when the disk is full)
  /// or ModelError on failures.
  int64_t run(const std::vector<int64_t>& rows, const std::vector<int64_t>& to_write);

  /// Network evaluations so far.
  const sampler::ForwardCounter& counter() const { return counter_; }
  /// Seconds spent so far in the phases the pipeline runs (noise, denoiser, update, decoder, write).
  const PhaseTimes& times() const { return times_; }

 private:
  struct Samples {
    torch::Tensor images;   // uint8 [n, H, W, 3]
    torch::Tensor latents;  // float32 [n, C, h, w] or undefined
    std::vector<int64_t> identity, image;  // labels of the n rows
  };
  Samples compute(const std::vector<int64_t>& rows);
  void store_samples(const std::vector<int64_t>& rows, const std::vector<int64_t>& to_write, const Samples& out);

  PipelineSetup s_;
  io::OutputStore& store_;
  sampler::ForwardCounter counter_{};
  PhaseTimes times_{};
  HostStaging staging_;  // pinned buffers for noise in and images/latents out (CUDA); plain copies on the CPU
};

}  // namespace adaptdiff::job
