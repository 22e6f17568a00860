#pragma once
// RAII ownership of the MPI library: MPI_Init_thread in the constructor, MPI_Finalize in the destructor.
// Safe when MPI is already initialised by someone else (then it neither initialises nor finalises).
#include <mpi.h>

#include <memory>

#include "dist/comm.hpp"

namespace adaptdiff::dist {

/// Initialises MPI (if needed) for the lifetime of the object and provides the world communicator.
/// Create exactly one, first thing in main, and keep it alive until every Comm is gone.
class MpiEnvironment {
 public:
  /// argc/argv: main's arguments (may be null). required_thread_level: MPI_THREAD_* level needed; the
  /// default FUNNELED allows LibTorch's intra-op threads as long as only the main thread calls MPI.
  /// Sets MPI_ERRORS_RETURN on MPI_COMM_WORLD and MPI_COMM_SELF (errors become CommError).
  /// Collective over MPI_COMM_WORLD (it builds world()).
  /// Throws CommError if MPI was already finalised, initialisation fails, or the library provides a
  /// lower thread level than required (then MPI is finalised again if this object initialised it).
  explicit MpiEnvironment(int* argc = nullptr, char*** argv = nullptr,
                          int required_thread_level = MPI_THREAD_FUNNELED);
  /// Frees world() and calls MPI_Finalize if this object initialised MPI (errors are logged, not thrown).
  ~MpiEnvironment();
  MpiEnvironment(const MpiEnvironment&) = delete;
  MpiEnvironment& operator=(const MpiEnvironment&) = delete;
  MpiEnvironment(MpiEnvironment&&) = delete;
  MpiEnvironment& operator=(MpiEnvironment&&) = delete;

  /// MPI_COMM_WORLD (not owned: never freed). Valid while this object lives.
  const Comm& world() const { return *world_; }
  /// The thread support level MPI provides (MPI_THREAD_SINGLE ... MPI_THREAD_MULTIPLE).
  int thread_level() const { return thread_level_; }
  /// True if this object called MPI_Init_thread (and will call MPI_Finalize).
  bool initialized_here() const { return initialized_here_; }

 private:
  bool initialized_here_ = false;
  int thread_level_ = MPI_THREAD_SINGLE;
  std::unique_ptr<Comm> world_;
};

}  // namespace adaptdiff::dist
