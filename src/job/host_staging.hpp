#pragma once
// Host <-> device copies of a rank's per-step data (noise in, images and latents out) through page-locked
// ("pinned") host buffers, so that a CUDA copy is one DMA transfer without a pageable bounce, and the noise of
// the next step can be uploaded while the current one is still in flight.
#include <torch/torch.h>

#include <array>
#include <memory>

namespace adaptdiff::job {

class HostStaging {
 public:
  /// device: the rank's device. On the CPU (or in a build without CUDA) the copies are plain .to() calls.
  explicit HostStaging(torch::Device device);
  ~HostStaging();
  HostStaging(const HostStaging&) = delete;
  HostStaging& operator=(const HostStaging&) = delete;

  /// host [any shape] CPU tensor -> the same values on the device. On CUDA the values are copied into the next
  /// of two pinned buffers (double buffering: a buffer is reused only after its previous transfer finished) and
  /// sent asynchronously on the current stream; later work on that stream sees them. `host` may be reused at once.
  torch::Tensor to_device(const torch::Tensor& host);

  /// device tensor -> a CPU tensor (own memory) holding its values, through a pinned buffer on CUDA.
  /// Synchronises with the current stream.
  torch::Tensor to_host(const torch::Tensor& on_device);

 private:
  struct Cuda;  // buffers and events, defined in the .cpp of CUDA builds
  torch::Device device_;
  std::unique_ptr<Cuda> cuda_;
};

}  // namespace adaptdiff::job
