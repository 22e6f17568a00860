#pragma once
// Communicator wrapper: the collectives and point-to-point calls adaptdiff needs, each MPI return code
// checked once (dist/mpi_check.hpp) and turned into adaptdiff::CommError with the call and file:line.
//
// Semantics follow MPI: a method documented as "collective" must be called by every rank of the
// communicator, in the same order, or the program hangs. Counts are element counts; a single message is
// limited to INT_MAX elements (CommError beyond that).
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace adaptdiff::dist {

/// Reduction operator of Comm::allreduce.
enum class ReduceOp { kSum, kMin, kMax };

/// An MPI communicator with its rank, size and node-local (shared-memory) rank and size.
/// Move-only. An owning Comm frees its MPI_Comm in the destructor (if MPI is not yet finalised).
class Comm {
 public:
  /// Wraps `comm`. Collective over `comm` (it determines local_rank/local_size with
  /// MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)). owned: call MPI_Comm_free on destruction.
  /// Sets MPI_ERRORS_RETURN on `comm` so failures come back as CommError.
  /// Throws CommError if comm is MPI_COMM_NULL or an MPI call fails.
  Comm(MPI_Comm comm, bool owned);
  ~Comm();
  Comm(Comm&& other) noexcept;
  Comm& operator=(Comm&& other) noexcept;
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  /// The wrapped handle (lent, still owned by this Comm), e.g. for parallel HDF5.
  MPI_Comm handle() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  /// Rank among the ranks of this communicator on the same node (shared-memory domain).
  int local_rank() const { return local_rank_; }
  /// Number of ranks of this communicator on the same node.
  int local_size() const { return local_size_; }

  /// Collective. Returns once every rank has entered.
  void barrier() const;

  /// Collective. The reduction of `value` over all ranks (MPI_INT64_T / MPI_DOUBLE). The int overload
  /// only resolves the int -> int64_t/double ambiguity of literals and returns int64_t.
  int64_t allreduce(int64_t value, ReduceOp op) const;
  int64_t allreduce(int value, ReduceOp op) const { return allreduce(static_cast<int64_t>(value), op); }
  double allreduce(double value, ReduceOp op) const;
  /// Collective. Element-wise reduction; every rank must pass the same length.
  std::vector<int64_t> allreduce(const std::vector<int64_t>& values, ReduceOp op) const;
  std::vector<double> allreduce(const std::vector<double>& values, ReduceOp op) const;

  /// Collective. result[r] = value of rank r.
  std::vector<int64_t> allgather(int64_t value) const;

  /// Collective. Copies root's `bytes` to every rank (non-roots are resized; their content is ignored).
  void bcast(std::vector<uint8_t>& bytes, int root) const;
  /// Collective. Returns root's `text` on every rank (the argument of non-roots is ignored).
  std::string bcast(const std::string& text, int root) const;

  /// Sends send[0, send_count) to rank `dest` and receives exactly recv_count elements from rank
  /// `source` into recv (MPI_Sendrecv; no deadlock in a ring). Counts may be 0 (buffers may then be
  /// null). Throws CommError if a count exceeds INT_MAX or the message received has another length.
  void sendrecv(const double* send, int64_t send_count, int dest, double* recv, int64_t recv_count, int source,
                int tag = 0) const;
  void sendrecv(const float* send, int64_t send_count, int dest, float* recv, int64_t recv_count, int source,
                int tag = 0) const;

  /// Collective. The communicator of the ranks on this node (MPI_COMM_TYPE_SHARED), owned by the result.
  Comm split_shared() const;

  /// Aborts every process of the communicator with `code` (MPI_Abort). Never returns.
  [[noreturn]] void abort(int code) const noexcept;

 private:
  void release() noexcept;

  MPI_Comm comm_ = MPI_COMM_NULL;
  bool owned_ = false;
  int rank_ = 0;
  int size_ = 0;
  int local_rank_ = 0;
  int local_size_ = 0;
};

}  // namespace adaptdiff::dist
