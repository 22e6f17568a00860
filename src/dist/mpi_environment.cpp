#include "dist/mpi_environment.hpp"

#include <string>

#include "core/error.hpp"
#include "dist/mpi_check.hpp"

namespace adaptdiff::dist {

MpiEnvironment::MpiEnvironment(int* argc, char*** argv, int required_thread_level) {
  int initialized = 0;
  int finalized = 0;
  ADAPTDIFF_MPI(MPI_Initialized, &initialized);
  ADAPTDIFF_MPI(MPI_Finalized, &finalized);
  if (finalized != 0) {
    throw CommError("dist::MpiEnvironment: MPI has already been finalised and cannot be initialised again");
  }
  if (initialized == 0) {
    ADAPTDIFF_MPI(MPI_Init_thread, argc, argv, required_thread_level, &thread_level_);
    initialized_here_ = true;
  } else {
    ADAPTDIFF_MPI(MPI_Query_thread, &thread_level_);
  }
  try {
    if (thread_level_ < required_thread_level) {
      throw CommError("dist::MpiEnvironment: MPI provides thread level " + std::to_string(thread_level_) +
                      ", required " + std::to_string(required_thread_level) +
                      "\n---> HINT: use an MPI library built with thread support (e.g. Open MPI >= 3)");
    }
    ADAPTDIFF_MPI(MPI_Comm_set_errhandler, MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    ADAPTDIFF_MPI(MPI_Comm_set_errhandler, MPI_COMM_SELF, MPI_ERRORS_RETURN);
    world_ = std::make_unique<Comm>(MPI_COMM_WORLD, false);
  } catch (...) {
    if (initialized_here_) ADAPTDIFF_MPI_NOEXCEPT(MPI_Finalize);
    throw;
  }
}

MpiEnvironment::~MpiEnvironment() {
  world_.reset();
  if (!initialized_here_) return;
  int finalized = 0;
  if (ADAPTDIFF_MPI_NOEXCEPT(MPI_Finalized, &finalized) && finalized == 0) {
    ADAPTDIFF_MPI_NOEXCEPT(MPI_Finalize);
  }
}

}  // namespace adaptdiff::dist
