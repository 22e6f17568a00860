#include "model/cuda_graph.hpp"

#include <map>
#include <string>
#include <utility>

#include "core/error.hpp"

#if ADAPTDIFF_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace adaptdiff::model {

#if ADAPTDIFF_WITH_CUDA
namespace {

class GraphedDenoiser final : public Denoiser {
 public:
  GraphedDenoiser(std::shared_ptr<Denoiser> inner, torch::Device device)
      : inner_(std::move(inner)), device_(device) {}

  torch::Tensor eps(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& context) override {
    torch::NoGradGuard no_grad;
    c10::cuda::CUDAGuard guard(device_);
    std::string key = c10::str(x_t.sizes(), context.defined() ? context.sizes() : c10::IntArrayRef{});
    auto it = graphs_.find(key);
    if (it == graphs_.end()) it = graphs_.emplace(key, record(x_t, t, context)).first;
    Recorded& r = *it->second;
    r.x_t.copy_(x_t, /*non_blocking=*/true);
    r.t.copy_(t, /*non_blocking=*/true);
    if (r.context.defined()) r.context.copy_(context, /*non_blocking=*/true);
    r.graph.replay();
    return r.eps.clone();
  }
  int64_t context_dim() const override { return inner_->context_dim(); }
  void set_compute_dtype(torch::ScalarType dtype) override {
    if (!graphs_.empty()) throw ModelError("replay_in_cuda_graphs: set the compute dtype before the first eps()");
    inner_->set_compute_dtype(dtype);
  }

 private:
  struct Recorded {
    at::cuda::CUDAGraph graph;
    torch::Tensor x_t, t, context, eps;  // the graph's own inputs and output, on device_
  };

  std::unique_ptr<Recorded> record(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& context) {
    auto r = std::make_unique<Recorded>();
    const auto on_device = torch::TensorOptions().device(device_);
    r->x_t = x_t.to(on_device.dtype(torch::kFloat)).clone();
    r->t = t.to(on_device.dtype(torch::kLong)).clone();
    if (context.defined()) r->context = context.to(on_device.dtype(torch::kFloat)).clone();
    const c10::cuda::CUDAStream caller = c10::cuda::getCurrentCUDAStream(device_.index());
    const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, device_.index());
    at::cuda::CUDAEvent inputs_ready;
    inputs_ready.record(caller);
    inputs_ready.block(side);
    try {
      c10::cuda::CUDAStreamGuard on_side(side);
      for (int warm_up = 0; warm_up < 2; ++warm_up) inner_->eps(r->x_t, r->t, r->context);
      side.synchronize();
      r->graph.capture_begin();
      r->eps = inner_->eps(r->x_t, r->t, r->context);
      r->graph.capture_end();
    } catch (const c10::Error& e) {
      throw ModelError("replay_in_cuda_graphs: recording the denoiser for input " + c10::str(x_t.sizes()) +
                       " failed: " + e.what_without_backtrace() +
                       "\n---> HINT: set run.cuda_graphs = false to run the denoiser without graphs");
    }
    side.synchronize();
    return r;
  }

  std::shared_ptr<Denoiser> inner_;
  torch::Device device_;
  std::map<std::string, std::unique_ptr<Recorded>> graphs_;
};

}  // namespace

bool cuda_graphs_built() { return true; }

std::shared_ptr<Denoiser> replay_in_cuda_graphs(std::shared_ptr<Denoiser> inner, torch::Device device) {
  if (!device.is_cuda()) {
    throw ModelError("replay_in_cuda_graphs: CUDA graphs need a CUDA device, got " + device.str() +
                     "\n---> HINT: set run.cuda_graphs = false, or run on a GPU (run.device = \"cuda\")");
  }
  return std::make_shared<GraphedDenoiser>(std::move(inner), device);
}

#else

bool cuda_graphs_built() { return false; }

std::shared_ptr<Denoiser> replay_in_cuda_graphs(std::shared_ptr<Denoiser>, torch::Device device) {
  throw ModelError("replay_in_cuda_graphs: this build has no CUDA (device " + device.str() +
                   ")\n---> HINT: set run.cuda_graphs = false, or build against a CUDA LibTorch (tools/setup.sh --cuda)");
}

#endif

}  // namespace adaptdiff::model
