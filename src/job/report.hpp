#pragma once
// What rank 0 tells the user about a run: the plan before the work, the summary after it.
#include <string>
#include <vector>

#include "config/run_config.hpp"
#include "job/job.hpp"
#include "job/model_bundle.hpp"
#include "job/plan.hpp"
#include "sampler/guidance.hpp"

namespace adaptdiff::job {

/// "1.50 MiB", "12.3 GiB": a byte count for people.
std::string human_bytes(double bytes);

/// Logs the plan: samples, batches, steps and forward rows per batch, each rank's batches and identity shard,
/// the output's size and per-rank buffers; warns about padding and idle ranks.
void print_plan(const Plan& plan, const config::RunConfig& cfg, const ModelBundle& mb,
                const sampler::GuidanceSchedule& guidance);

/// Logs the end of a run: the stop with its exit code and how to resume, or images, rate and forwards; then
/// the output file's size. `identities`/`images_per_identity`/`world_size` describe the run.
void print_summary(const JobSummary& summary, int64_t identities, int64_t images_per_identity, int world_size);

/// Logs where the time went: for each phase of phase_names() with time, its share of `wall` (the seconds from
/// the negative selection to the closed output, slowest rank) as the mean over ranks and the largest rank's;
/// then what no phase covers. sum_seconds / max_seconds: per phase, summed / max over the world_size ranks.
void print_phases(const std::vector<double>& sum_seconds, const std::vector<double>& max_seconds, double wall,
                  int world_size);

}  // namespace adaptdiff::job
