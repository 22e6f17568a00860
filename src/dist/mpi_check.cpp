#include "dist/mpi_check.hpp"

#include <cstring>
#include <string>

#include "core/error.hpp"
#include "core/log.hpp"

namespace adaptdiff::dist::detail {
namespace {

// "src/dist/comm.cpp" rather than the absolute build path.
const char* short_path(const char* file) {
  const char* found = nullptr;
  for (const char* p = std::strstr(file, "src/"); p != nullptr; p = std::strstr(p + 1, "src/")) found = p;
  return found != nullptr ? found : file;
}

std::string describe(int rc, const char* call, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS) std::strcpy(text, "unknown MPI error");
  return std::string(call) + " failed at " + short_path(file) + ":" + std::to_string(line) + ": " + text +
         " (error code " + std::to_string(rc) + ")";
}

}  // namespace

void check_mpi(int rc, const char* call, const char* file, int line) {
  if (rc != MPI_SUCCESS) throw CommError(describe(rc, call, file, line));
}

bool check_mpi_noexcept(int rc, const char* call, const char* file, int line) noexcept {
  if (rc == MPI_SUCCESS) return true;
  try {
    log::error("{}", describe(rc, call, file, line));
  } catch (...) {  // logging must not turn a destructor into std::terminate
  }
  return false;
}

}  // namespace adaptdiff::dist::detail
