#pragma once
// NCCL between the ranks of an MPI communicator, one CUDA device per rank: the home of every NCCL call.
// The communicator is bootstrapped over MPI (rank 0 makes the NCCL unique id and broadcasts it).
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "dist/comm.hpp"

namespace adaptdiff::dist {

/// True when this build has NCCL (a CUDA LibTorch build, ADAPTDIFF_WITH_CUDA).
bool nccl_built();

class NcclComm {
 public:
  /// Collective over `comm`. Every rank passes its own CUDA device (devices may repeat: several ranks on one
  /// GPU work). Throws CommError (naming the rank and NCCL's message) when NCCL fails, or when the build has no
  /// NCCL or `device` is not a CUDA device (on every rank: the check comes before any collective).
  NcclComm(const Comm& comm, torch::Device device);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  /// Collective. Gathers the rows of every rank in rank order (ncclAllGather on the current stream).
  /// rows: [m_r, D] float32 on this rank's device (m_r may be 0); rows_per_rank: m of every rank, the same list
  /// on every rank (e.g. from Comm::allgather). Returns [sum m, D] float32 on the device.
  /// Throws InputError when rows do not match rows_per_rank[rank], CommError when NCCL fails.
  torch::Tensor all_gather_rows(const torch::Tensor& rows, const std::vector<int64_t>& rows_per_rank) const;

  torch::Device device() const { return device_; }

 private:
  struct Handle;  // ncclComm_t, defined in the .cpp of CUDA builds
  int rank_ = 0, size_ = 1;
  torch::Device device_;
  std::unique_ptr<Handle> handle_;
};

}  // namespace adaptdiff::dist
