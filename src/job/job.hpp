#pragma once
// The sampling job: validates the configuration and inputs, selects negatives across ranks, samples the
// rank's batches with guided DDPM/DDIM, decodes to RGB and writes everything into one parallel HDF5 file.
#include <string>
#include <vector>

#include "config/run_config.hpp"

namespace adaptdiff::dist {
class Comm;
}

namespace adaptdiff::job {

struct JobOptions {
  bool dry_run = false;    ///< print the plan (ranks, shards, forwards, memory) and exit
  bool force_new = false;  ///< replace an existing output instead of resuming it
  /// On resume, compute with run.batch_size instead of the file's compute batch size: the remaining samples
  /// may then differ in their last bits from an uninterrupted run (recorded per sample in compute_batch_size).
  bool rebatch = false;
};

/// What a run did (identical on every rank).
struct JobSummary {
  int64_t images_written = 0;  ///< samples produced by this run
  int64_t samples_done = 0;    ///< samples in the file now (earlier runs included)
  int64_t samples_total = 0;   ///< N*K
  int64_t forwards = 0;        ///< network forward passes summed over ranks
  double seconds = 0.0;        ///< wall time of the sampling phase
  bool stopped = false;        ///< stopped on a signal with a checkpoint; work remains
  std::string output_path;
};

/// Runs the whole job on every rank of `comm` (COLLECTIVE). If the output exists and belongs to this run
/// (same fingerprint), it is resumed: samples whose record is missing or fails its checksum are redone.
/// Throws ConfigError/InputError/ModelError/IoError with the same message on every rank when validation
/// fails (nothing is written then), and Error when sampling fails on any rank (the file stays resumable).
JobSummary run_sampling_job(const dist::Comm& comm, const config::RunConfig& cfg, const JobOptions& opts);

}  // namespace adaptdiff::job
