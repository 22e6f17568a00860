#pragma once
// The one place where MPI return codes are checked: ADAPTDIFF_MPI(MPI_Fn, args...) calls MPI_Fn(args...)
// and throws adaptdiff::CommError("MPI_Fn failed at src/dist/x.cpp:123: <MPI error string>") unless it
// returned MPI_SUCCESS. Communicators made by dist/ use MPI_ERRORS_RETURN so that errors reach this check
// instead of aborting inside the MPI library. Internal to dist/ (include it only from dist/*.cpp).
#include <mpi.h>

namespace adaptdiff::dist::detail {

/// Throws CommError naming `call` and file:line unless rc == MPI_SUCCESS.
void check_mpi(int rc, const char* call, const char* file, int line);

/// As check_mpi, but logs the error instead of throwing (for destructors and abort paths).
/// Returns true when rc == MPI_SUCCESS.
bool check_mpi_noexcept(int rc, const char* call, const char* file, int line) noexcept;

}  // namespace adaptdiff::dist::detail

/// Calls fn(...) and checks its return code (throws CommError).
#define ADAPTDIFF_MPI(fn, ...) ::adaptdiff::dist::detail::check_mpi(fn(__VA_ARGS__), #fn, __FILE__, __LINE__)
/// Calls fn(...) and logs a failure instead of throwing; evaluates to true on success.
#define ADAPTDIFF_MPI_NOEXCEPT(fn, ...) \
  ::adaptdiff::dist::detail::check_mpi_noexcept(fn(__VA_ARGS__), #fn, __FILE__, __LINE__)
