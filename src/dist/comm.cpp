#include "dist/comm.hpp"

#include <climits>
#include <cstdlib>
#include <string>
#include <utility>

#include "core/error.hpp"
#include "dist/mpi_check.hpp"

namespace adaptdiff::dist {
namespace {

MPI_Op to_mpi(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return MPI_SUM;
    case ReduceOp::kMin:
      return MPI_MIN;
    case ReduceOp::kMax:
      return MPI_MAX;
  }
  return MPI_OP_NULL;
}

int checked_count(int64_t count, const char* operation) {
  if (count < 0 || count > INT_MAX) {
    throw CommError(std::string(operation) + ": message of " + std::to_string(count) +
                    " elements outside [0, INT_MAX]\n---> HINT: use more ranks so that each shard is smaller");
  }
  return static_cast<int>(count);
}

template <typename T>
void sendrecv_impl(MPI_Comm comm, int rank, MPI_Datatype type, const T* send, int64_t send_count, int dest, T* recv,
                   int64_t recv_count, int source, int tag) {
  const int n_send = checked_count(send_count, "dist::Comm::sendrecv");
  const int n_recv = checked_count(recv_count, "dist::Comm::sendrecv");
  if (dest == rank && source == rank && n_send != n_recv) {
    // Open MPI truncates a too-long message to self silently; the lengths are known here, so check them.
    throw CommError("dist::Comm::sendrecv: expected " + std::to_string(n_recv) + " elements from rank " +
                    std::to_string(source) + " (itself), received " + std::to_string(n_send));
  }
  MPI_Status status;
  ADAPTDIFF_MPI(MPI_Sendrecv, send, n_send, type, dest, tag, recv, n_recv, type, source, tag, comm, &status);
  int received = 0;
  ADAPTDIFF_MPI(MPI_Get_count, &status, type, &received);
  if (received != n_recv) {
    throw CommError("dist::Comm::sendrecv: expected " + std::to_string(n_recv) + " elements from rank " +
                    std::to_string(source) + ", received " + std::to_string(received));
  }
}

}  // namespace

Comm::Comm(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
  if (comm == MPI_COMM_NULL) throw CommError("dist::Comm: cannot wrap MPI_COMM_NULL");
  ADAPTDIFF_MPI(MPI_Comm_set_errhandler, comm_, MPI_ERRORS_RETURN);
  ADAPTDIFF_MPI(MPI_Comm_rank, comm_, &rank_);
  ADAPTDIFF_MPI(MPI_Comm_size, comm_, &size_);
  MPI_Comm node = MPI_COMM_NULL;
  ADAPTDIFF_MPI(MPI_Comm_split_type, comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
  ADAPTDIFF_MPI(MPI_Comm_rank, node, &local_rank_);
  ADAPTDIFF_MPI(MPI_Comm_size, node, &local_size_);
  ADAPTDIFF_MPI(MPI_Comm_free, &node);
}

Comm::~Comm() { release(); }

Comm::Comm(Comm&& other) noexcept
    : comm_(std::exchange(other.comm_, MPI_COMM_NULL)),
      owned_(std::exchange(other.owned_, false)),
      rank_(other.rank_),
      size_(other.size_),
      local_rank_(other.local_rank_),
      local_size_(other.local_size_) {}

Comm& Comm::operator=(Comm&& other) noexcept {
  if (this != &other) {
    release();
    comm_ = std::exchange(other.comm_, MPI_COMM_NULL);
    owned_ = std::exchange(other.owned_, false);
    rank_ = other.rank_;
    size_ = other.size_;
    local_rank_ = other.local_rank_;
    local_size_ = other.local_size_;
  }
  return *this;
}

void Comm::release() noexcept {
  if (owned_ && comm_ != MPI_COMM_NULL) {
    int finalized = 0;
    if (ADAPTDIFF_MPI_NOEXCEPT(MPI_Finalized, &finalized) && finalized == 0) {
      ADAPTDIFF_MPI_NOEXCEPT(MPI_Comm_free, &comm_);
    }
  }
  comm_ = MPI_COMM_NULL;
  owned_ = false;
}

void Comm::barrier() const { ADAPTDIFF_MPI(MPI_Barrier, comm_); }

int64_t Comm::allreduce(int64_t value, ReduceOp op) const {
  int64_t out = 0;
  ADAPTDIFF_MPI(MPI_Allreduce, &value, &out, 1, MPI_INT64_T, to_mpi(op), comm_);
  return out;
}

double Comm::allreduce(double value, ReduceOp op) const {
  double out = 0.0;
  ADAPTDIFF_MPI(MPI_Allreduce, &value, &out, 1, MPI_DOUBLE, to_mpi(op), comm_);
  return out;
}

std::vector<int64_t> Comm::allreduce(const std::vector<int64_t>& values, ReduceOp op) const {
  std::vector<int64_t> out(values.size());
  const int n = checked_count(static_cast<int64_t>(values.size()), "dist::Comm::allreduce");
  ADAPTDIFF_MPI(MPI_Allreduce, values.data(), out.data(), n, MPI_INT64_T, to_mpi(op), comm_);
  return out;
}

std::vector<double> Comm::allreduce(const std::vector<double>& values, ReduceOp op) const {
  std::vector<double> out(values.size());
  const int n = checked_count(static_cast<int64_t>(values.size()), "dist::Comm::allreduce");
  ADAPTDIFF_MPI(MPI_Allreduce, values.data(), out.data(), n, MPI_DOUBLE, to_mpi(op), comm_);
  return out;
}

std::vector<int64_t> Comm::allgather(int64_t value) const {
  std::vector<int64_t> out(static_cast<size_t>(size_));
  ADAPTDIFF_MPI(MPI_Allgather, &value, 1, MPI_INT64_T, out.data(), 1, MPI_INT64_T, comm_);
  return out;
}

void Comm::bcast(std::vector<uint8_t>& bytes, int root) const {
  int64_t length = static_cast<int64_t>(bytes.size());
  ADAPTDIFF_MPI(MPI_Bcast, &length, 1, MPI_INT64_T, root, comm_);
  const int n = checked_count(length, "dist::Comm::bcast");
  if (rank_ != root) bytes.resize(static_cast<size_t>(length));
  ADAPTDIFF_MPI(MPI_Bcast, bytes.data(), n, MPI_BYTE, root, comm_);
}

std::string Comm::bcast(const std::string& text, int root) const {
  std::vector<uint8_t> bytes;
  if (rank_ == root) bytes.assign(text.begin(), text.end());
  bcast(bytes, root);
  return std::string(bytes.begin(), bytes.end());
}

void Comm::sendrecv(const double* send, int64_t send_count, int dest, double* recv, int64_t recv_count, int source,
                    int tag) const {
  sendrecv_impl(comm_, rank_, MPI_DOUBLE, send, send_count, dest, recv, recv_count, source, tag);
}

void Comm::sendrecv(const float* send, int64_t send_count, int dest, float* recv, int64_t recv_count, int source,
                    int tag) const {
  sendrecv_impl(comm_, rank_, MPI_FLOAT, send, send_count, dest, recv, recv_count, source, tag);
}

Comm Comm::split_shared() const {
  MPI_Comm node = MPI_COMM_NULL;
  ADAPTDIFF_MPI(MPI_Comm_split_type, comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
  try {
    return Comm(node, true);
  } catch (...) {
    ADAPTDIFF_MPI_NOEXCEPT(MPI_Comm_free, &node);
    throw;
  }
}

void Comm::abort(int code) const noexcept {
  ADAPTDIFF_MPI_NOEXCEPT(MPI_Abort, comm_ != MPI_COMM_NULL ? comm_ : MPI_COMM_WORLD, code);
  std::abort();  // MPI_Abort should not return; make sure the process ends if it does
}

}  // namespace adaptdiff::dist
