#pragma once
// The output file's lifecycle: one writer (a lock), checks before anything is written, the compute batch size
// of a resume, and create-then-rename so that a kill never leaves an unopenable file at output.path.
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "config/run_config.hpp"
#include "io/store.hpp"

namespace adaptdiff::dist {
class Comm;
}

namespace adaptdiff::job {

/// An exclusive advisory lock on "<output>.lock" held by rank 0 for the whole run, so that two jobs never
/// write (or replace) the same output at once. The lock file stays; only the lock matters.
class RunLock {
 public:
  RunLock() = default;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  ~RunLock();
  /// Takes the lock. Throws IoError when another process holds it or the lock file cannot be created; a file
  /// system without locks only logs a warning.
  void acquire(const std::string& output);

 private:
  int fd_ = -1;
};

/// Creates the output's folder when missing; throws IoError when it cannot be created or is not writable, or
/// when an existing output is not writable.
void check_output_folder(const std::string& path);

/// Refuses (ConfigError) an output path that is one of the run's input files (--force-new would destroy it).
void check_not_an_input(const config::RunConfig& cfg);

/// The compute batch size of this run: `configured` for a new file; for a resume the file's, so that the
/// remaining samples are computed in the same batches as an uninterrupted run, unless `rebatch` asks for the
/// configured one. Rank 0 (`root`) logs which and why.
int64_t compute_batch_size(bool start_new, int64_t file_batch_size, int64_t configured, bool rebatch, bool root);

/// Opens the output for writing (COLLECTIVE): a new file (`start_new`) is created as "<path>.creating" with
/// `layout` and `attrs` and renamed to `path` once its metadata are on disk; otherwise the existing file is
/// opened and must have `layout`. Throws IoError on every rank when any rank fails.
std::unique_ptr<io::OutputStore> open_output(const dist::Comm& comm, const config::OutputSection& output,
                                             bool start_new, const io::StoreLayout& layout,
                                             const std::map<std::string, std::string>& attrs);

}  // namespace adaptdiff::job
