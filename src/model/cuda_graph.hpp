#pragma once
// The denoiser step replayed from CUDA graphs: the fixed-shape UNet forward is recorded once per input shape and
// then launched as one graph, so the step costs one launch instead of hundreds of kernel launches from the host.
#include <memory>

#include "model/loader.hpp"

namespace adaptdiff::model {

/// True when this build can record CUDA graphs (LibTorch with CUDA, ADAPTDIFF_WITH_CUDA).
bool cuda_graphs_built();

/// Wraps `inner` (a Denoiser on CUDA device `device`, its compute dtype already set) in one that records
/// inner->eps once per distinct input shape (x_t sizes, context present or not) into a CUDA graph and replays it:
/// the inputs are copied into the graph's own input tensors, the graph is replayed on the current stream, and
/// eps is returned as a fresh tensor (a copy of the graph's output), so results never alias each other.
/// Recording runs two warm-up forwards on a side stream first (lazy library set-up must not be captured).
/// The values equal inner's up to the kernels' own run-to-run differences (same kernels, same order).
/// Throws ModelError when the build has no CUDA or `device` is not a CUDA device; errors of the capture
/// surface as ModelError from the first eps() call of that shape.
std::shared_ptr<Denoiser> replay_in_cuda_graphs(std::shared_ptr<Denoiser> inner, torch::Device device);

}  // namespace adaptdiff::model
