#pragma once
// The identity of a run: the output's root attributes, among them one `fingerprint.*` attribute per part of
// everything that changes the samples, and the check that an existing output belongs to this run.
#include <cstdint>
#include <map>
#include <string>

#include "config/run_config.hpp"
#include "io/identities.hpp"
#include "job/model_bundle.hpp"
#include "sampler/guidance.hpp"

namespace adaptdiff::dist {
class Comm;
}

namespace adaptdiff::job {

/// Root attribute naming the output's layout, and its value for files written now (3: with compute batch
/// sizes). Files of another layout are not resumed.
inline constexpr const char* kLayoutVersion = "layout_version";
inline constexpr const char* kLayoutVersionValue = "3";
/// Root attribute: the compute batch size of the grid the file was created with (plan.hpp).
inline constexpr const char* kComputeBatchSize = "compute_batch_size";

/// Root attributes of the output: resolved config (`config_toml`), file hashes (`sha256_*`), versions, and
/// the fingerprint (`fingerprint.model`, `.sampler`, `.guidance`, `.negatives`, `.identities`, `.seed`,
/// `.image`; `.guidance` is the schedule's own fingerprint()). `pool` is null when the negatives come from the
/// identity set. Reads and hashes every input file once (IoError when one is unreadable).
std::map<std::string, std::string> run_attributes(const config::RunConfig& cfg, const io::ContextSource& ids,
                                                  const io::ContextSource* pool, const ModelBundle& mb,
                                                  const sampler::GuidanceSchedule& guidance);

/// Root's map on every rank (COLLECTIVE).
std::map<std::string, std::string> bcast_map(const dist::Comm& comm, const std::map<std::string, std::string>& m);

/// Refuses an existing output whose fingerprint or layout version differs from `attrs` (ConfigError naming the
/// differing parts) or that is unreadable (IoError); nothing is changed. Returns the compute batch size it records.
/// Serial: one rank reads the file.
int64_t check_same_run(const std::string& path, const std::map<std::string, std::string>& attrs, bool file_locking);

}  // namespace adaptdiff::job
