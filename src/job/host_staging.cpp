#include "job/host_staging.hpp"

#if ADAPTDIFF_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace adaptdiff::job {

#if ADAPTDIFF_WITH_CUDA

struct HostStaging::Cuda {
  std::array<torch::Tensor, 2> upload;          // pinned, grown to the largest upload
  std::array<at::cuda::CUDAEvent, 2> uploaded;  // recorded after each buffer's transfer
  std::array<bool, 2> in_flight{false, false};
  int next = 0;
  torch::Tensor download;                       // pinned
};

namespace {
/// A pinned buffer of at least `like`'s bytes, viewed with its dtype and shape.
torch::Tensor pinned_like(torch::Tensor& buffer, const torch::Tensor& like) {
  const int64_t bytes = like.numel() * static_cast<int64_t>(like.element_size());
  if (!buffer.defined() || buffer.numel() < bytes) {
    buffer = torch::empty({bytes}, torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(true));
  }
  return buffer.narrow(0, 0, bytes).view(like.scalar_type()).view(like.sizes());
}
}  // namespace

HostStaging::HostStaging(torch::Device device) : device_(device) {
  if (device_.is_cuda()) cuda_ = std::make_unique<Cuda>();
}

torch::Tensor HostStaging::to_device(const torch::Tensor& host) {
  if (!cuda_) return host.to(device_);
  Cuda& c = *cuda_;
  const int slot = c.next;
  c.next = 1 - slot;
  if (c.in_flight[slot]) c.uploaded[slot].synchronize();  // its last transfer must be done before reuse
  torch::Tensor staged = pinned_like(c.upload[slot], host);
  staged.copy_(host);
  torch::Tensor out = staged.to(device_, /*non_blocking=*/true);
  c.uploaded[slot].record(c10::cuda::getCurrentCUDAStream(device_.index()));
  c.in_flight[slot] = true;
  return out;
}

torch::Tensor HostStaging::to_host(const torch::Tensor& on_device) {
  if (!cuda_ || !on_device.is_cuda()) return on_device.to(torch::kCPU);
  const torch::Tensor src = on_device.contiguous();
  torch::Tensor staged = pinned_like(cuda_->download, src);
  staged.copy_(src, /*non_blocking=*/true);
  c10::cuda::getCurrentCUDAStream(device_.index()).synchronize();
  return staged.clone();
}

#else

struct HostStaging::Cuda {};

HostStaging::HostStaging(torch::Device device) : device_(device) {}

torch::Tensor HostStaging::to_device(const torch::Tensor& host) { return host.to(device_); }

torch::Tensor HostStaging::to_host(const torch::Tensor& on_device) { return on_device.to(torch::kCPU); }

#endif

HostStaging::~HostStaging() = default;

}  // namespace adaptdiff::job
