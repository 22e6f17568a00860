#pragma once
// Typed exceptions of adaptdiff and the process exit codes that `main` maps them to.
//
// Library code throws; only the executables' `main` catches, prints "[rank N] ..." and exits/aborts.
// Messages start with the operation, say what was expected and what was found, and may carry a hint
// line ("---> HINT: ...") when the fix is known.
#include <stdexcept>
#include <string>

namespace adaptdiff {

/// Base class of every error adaptdiff raises on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  /// True when every rank of the job raised this same error (see job's agreement step), so the ranks
  /// can exit cleanly instead of aborting the communicator.
  bool on_all_ranks() const { return on_all_ranks_; }
  void set_on_all_ranks() { on_all_ranks_ = true; }

 private:
  bool on_all_ranks_ = false;
};

/// A run/model configuration is malformed: unknown key, wrong type, out-of-range value.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// A checkpoint or TorchScript file does not match the model description (keys, shapes, dtypes, format).
class ModelError : public Error {
 public:
  using Error::Error;
};

/// Input data is invalid: identity embeddings with NaN/Inf, zero norm, wrong width, ...
class InputError : public Error {
 public:
  using Error::Error;
};

/// File-system or HDF5 failure: cannot open/create/write, disk full, foreign output file, ...
class IoError : public Error {
 public:
  using Error::Error;
};

/// MPI / NCCL communication failure.
class CommError : public Error {
 public:
  using Error::Error;
};

/// Process exit codes (documented in README.md, "Exit codes").
enum class ExitCode : int {
  kSuccess = 0,          ///< all work done
  kFailure = 1,          ///< runtime failure (I/O, model, communication)
  kUsage = 2,            ///< bad command line or configuration; nothing was started
  kCheckpointed = 3,     ///< stopped on a signal with a consistent checkpoint; work remains
  kVerifyFailed = 4,     ///< adaptdiff-verify: at least one check failed
};

/// The exit code `main` gives an error: kUsage (2) for bad input — ConfigError, InputError, ModelError (a
/// model, checkpoint or data file that does not fit), all found before any work starts — else kFailure (1).
inline int exit_code_for(const std::exception& e) {
  const bool bad_input = dynamic_cast<const ConfigError*>(&e) != nullptr ||
                         dynamic_cast<const InputError*>(&e) != nullptr ||
                         dynamic_cast<const ModelError*>(&e) != nullptr;
  return static_cast<int>(bad_input ? ExitCode::kUsage : ExitCode::kFailure);
}

}  // namespace adaptdiff
