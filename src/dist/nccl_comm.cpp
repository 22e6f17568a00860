#include "dist/nccl_comm.hpp"

#include <algorithm>
#include <string>

#include "core/error.hpp"

#if ADAPTDIFF_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <nccl.h>
#endif

namespace adaptdiff::dist {

#if ADAPTDIFF_WITH_CUDA

namespace {
/// The one check of every NCCL call: throws CommError naming the rank, the call and NCCL's message.
void nccl_check(ncclResult_t result, int rank, const char* call) {
  if (result == ncclSuccess) return;
  throw CommError("rank " + std::to_string(rank) + ": " + call + " failed: " + ncclGetErrorString(result) +
                  "\n---> HINT: NCCL_DEBUG=WARN shows NCCL's own diagnosis");
}
}  // namespace

struct NcclComm::Handle {
  ncclComm_t comm = nullptr;
};

bool nccl_built() { return true; }

NcclComm::NcclComm(const Comm& comm, torch::Device device)
    : rank_(comm.rank()), size_(comm.size()), device_(device), handle_(std::make_unique<Handle>()) {
  if (!device.is_cuda()) {
    throw CommError("rank " + std::to_string(rank_) + ": NCCL needs a CUDA device, got " + device.str());
  }
  std::vector<uint8_t> id_bytes(sizeof(ncclUniqueId));
  ncclUniqueId id{};
  if (rank_ == 0) {
    nccl_check(ncclGetUniqueId(&id), rank_, "ncclGetUniqueId");
    std::copy_n(reinterpret_cast<const uint8_t*>(&id), sizeof id, id_bytes.begin());
  }
  comm.bcast(id_bytes, 0);
  std::copy_n(id_bytes.begin(), sizeof id, reinterpret_cast<uint8_t*>(&id));
  const c10::cuda::CUDAGuard guard(device_);
  nccl_check(ncclCommInitRank(&handle_->comm, size_, id, rank_), rank_, "ncclCommInitRank");
}

NcclComm::~NcclComm() {
  if (handle_ && handle_->comm != nullptr) ncclCommDestroy(handle_->comm);
}

torch::Tensor NcclComm::all_gather_rows(const torch::Tensor& rows, const std::vector<int64_t>& rows_per_rank) const {
  if (static_cast<int>(rows_per_rank.size()) != size_ || rows.dim() != 2 || rows.scalar_type() != torch::kFloat ||
      rows.device() != device_ || rows.size(0) != rows_per_rank[static_cast<size_t>(rank_)]) {
    throw InputError("NcclComm::all_gather_rows: rank " + std::to_string(rank_) + " passes rows " +
                     c10::str(rows.sizes(), " ", rows.scalar_type(), " on ", rows.device()) + " for " +
                     std::to_string(rows_per_rank.size()) + " ranks, " +
                     std::to_string(rows_per_rank.empty() ? -1 : rows_per_rank[static_cast<size_t>(rank_)]) +
                     " rows expected (float32 on " + device_.str() + ")");
  }
  // ncclAllGather moves equal counts: every rank sends max_rows rows (its own padded), then the padding goes.
  const int64_t max_rows = *std::max_element(rows_per_rank.begin(), rows_per_rank.end());
  const int64_t D = rows.size(1);
  const auto opts = rows.options();
  torch::Tensor send = torch::zeros({max_rows, D}, opts);
  send.narrow(0, 0, rows.size(0)).copy_(rows);
  torch::Tensor recv = torch::empty({size_ * max_rows, D}, opts);
  const c10::cuda::CUDAGuard guard(device_);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device_.index()).stream();
  nccl_check(ncclAllGather(send.data_ptr<float>(), recv.data_ptr<float>(), static_cast<size_t>(max_rows * D),
                           ncclFloat, handle_->comm, stream),
             rank_, "ncclAllGather");
  std::vector<torch::Tensor> parts;
  for (int r = 0; r < size_; ++r) parts.push_back(recv.narrow(0, r * max_rows, rows_per_rank[static_cast<size_t>(r)]));
  return torch::cat(parts, 0);
}

#else

struct NcclComm::Handle {};

bool nccl_built() { return false; }

NcclComm::NcclComm(const Comm& comm, torch::Device device) : rank_(comm.rank()), size_(comm.size()), device_(device) {
  throw CommError("rank " + std::to_string(rank_) + ": this build has no NCCL (CPU LibTorch)" +
                  "\n---> HINT: build against a CUDA LibTorch (tools/setup.sh --cuda)");
}

NcclComm::~NcclComm() = default;

torch::Tensor NcclComm::all_gather_rows(const torch::Tensor&, const std::vector<int64_t>&) const {
  throw CommError("NcclComm::all_gather_rows: this build has no NCCL");
}

#endif

}  // namespace adaptdiff::dist
