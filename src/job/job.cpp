// The sampling job, as the composition root of its parts: threads and device, the inputs, the model, the
// sampler's timesteps, the run's identity and output file, the negatives, then the batch pipeline in rounds
// closed by an agreement, and the report. Every step that can fail on one rank is agreed (dist/agree.hpp), so
// every error reaches all ranks together and the output store is closed collectively on the way out.
#include "job/job.hpp"

#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/stop.hpp"
#include "dist/agree.hpp"
#include "dist/comm.hpp"
#include "job/batch_pipeline.hpp"
#include "job/fingerprint.hpp"
#include "job/inputs.hpp"
#include "job/model_bundle.hpp"
#include "job/output_file.hpp"
#include "job/phases.hpp"
#include "job/plan.hpp"
#include "core/progress.hpp"
#include "job/record.hpp"
#include "job/report.hpp"
#include "job/threads.hpp"
#include "sampler/guidance.hpp"
#include "sampler/samplers.hpp"

namespace adaptdiff::job {

namespace fs = std::filesystem;
using dist::agree;

namespace {

/// Intra-op threads, pinned BLAS and the device of this rank (COLLECTIVE for the device check).
torch::Device set_up_rank(const dist::Comm& comm, const config::RunConfig& cfg) {
  const int threads = threads_per_rank(cfg.run.threads, comm.local_size(), cpus_allowed(), 0);
  torch::set_num_threads(threads);
  const int blas_threads = pin_blas_threads(1);
  torch::Device device(torch::kCPU);
  agree(comm, "device", [&] { device = pick_device(cfg, comm); });
  log::info("device {}, precision {}, {} intra-op thread(s) ({} rank(s) on this node, {} CPU(s) allowed{}), BLAS threads {}",
            device.str(), cfg.run.precision, threads, comm.local_size(), cpus_allowed(), cfg.run.threads > 0 ? ", set by run.threads" : "",
            blas_threads > 0 ? std::to_string(blas_threads) : std::string("n/a"));
  const std::string binding = binding_warning(comm.local_size(), cpus_allowed(), 0);
  if (cfg.run.threads <= 0 && device.is_cpu() && !binding.empty()) log::warn("{}", binding);
  return device;
}

/// The sampler of `cfg` (ConfigError for an unknown kind).
sampler::SamplerSpec sampler_spec(const config::RunConfig& cfg) {
  return {sampler::parse_sampler_kind(cfg.sampler.kind), cfg.sampler.steps, cfg.sampler.eta};
}

/// The guidance schedule of `cfg`; it must have a negative condition when it guides. Rank 0 warns about
/// [guidance] keys the schedule does not read. Throws ConfigError.
std::unique_ptr<sampler::GuidanceSchedule> make_guidance(const config::RunConfig& cfg, negatives::Strategy strategy,
                                                         bool root) {
  std::vector<std::string> unused;
  auto guidance = sampler::make_guidance_schedule(cfg.guidance.schedule, cfg.guidance.params, &unused);
  sampler::check_has_negative(*guidance, strategy != negatives::Strategy::kNone);
  for (const auto& key : unused) {
    if (root) log::warn("guidance.{} is not read by schedule '{}'", key, guidance->name());
  }
  return guidance;
}

/// Whether the run starts a new output or resumes one, and the compute batch size that follows.
struct OutputDecision {
  bool exists = false;
  bool start_new = true;
  int64_t batch_size = 0;
};

/// Checks the output (same run, not an input, writable folder) and takes the lock unless dry-running
/// (COLLECTIVE; rank 0 decides, since ranks may see a shared file system differently).
OutputDecision decide_output(const dist::Comm& comm, const config::RunConfig& cfg, const JobOptions& opts,
                             const std::map<std::string, std::string>& attrs, RunLock& lock) {
  const bool root = comm.rank() == 0;
  OutputDecision d;
  d.exists = comm.allreduce(root && fs::exists(cfg.output.path) ? 1 : 0, dist::ReduceOp::kMax) != 0;
  d.start_new = !d.exists || opts.force_new || cfg.output.overwrite;
  int64_t file_batch_size = 0;
  agree(comm, "output", [&] {
    check_not_an_input(cfg);
    if (!d.start_new && root) file_batch_size = check_same_run(cfg.output.path, attrs, cfg.output.file_locking);
    if (!opts.dry_run) {
      check_output_folder(cfg.output.path);
      if (root) lock.acquire(cfg.output.path);
    }
  });
  if (root && d.exists) {
    log::info("output: {} {} {}",
              opts.dry_run ? (d.start_new ? "would replace" : "would resume")
                           : (d.start_new ? "replacing" : "resuming"),
              cfg.output.path, d.start_new ? "(--force-new / output.overwrite)" : "(same run)");
  }
  file_batch_size = comm.allreduce(file_batch_size, dist::ReduceOp::kMax);
  d.batch_size = compute_batch_size(d.start_new, file_batch_size, cfg.run.batch_size, opts.rebatch, root);
  return d;
}

io::StoreLayout store_layout(const config::RunConfig& cfg, const ModelBundle& mb) {
  io::StoreLayout layout;
  layout.identities = cfg.identities.count;
  layout.images_per_identity = cfg.identities.images_per_identity;
  layout.height = mb.image_height;
  layout.width = mb.image_width;
  layout.context_dim = cfg.identities.context_dim;
  layout.store_latents = cfg.output.store_latents;
  layout.latent_c = mb.latent_shape[0];
  layout.latent_h = mb.latent_shape[1];
  layout.latent_w = mb.latent_shape[2];
  return layout;
}

/// Identities whose contexts this rank's batches need: from the first row of its first batch to the last
/// row of its last one.
dist::Range touched_identities(const Plan& plan, dist::Range my_batches) {
  if (my_batches.size() == 0) return {0, 0};
  const int64_t K = plan.images_per_identity;
  return {plan.batch_rows(my_batches.begin).front() / K, plan.batch_rows(my_batches.end - 1).back() / K + 1};
}

/// What the rounds of one run did on this rank.
struct RoundsResult {
  int64_t written = 0;   ///< samples this rank stored
  bool stopped = false;  ///< the ranks agreed to stop on a signal
  double seconds = 0.0;
  std::vector<int64_t> recorded_since_flush;  ///< samples this rank recorded after the last completed flush
};

/// Samples this rank's batches of `plan`, one per round; each round ends in one agreement on failures, stop
/// requests and due checkpoints (COLLECTIVE). Throws the lowest failing rank's error on every rank.
RoundsResult run_rounds(const dist::Comm& comm, const config::RunConfig& cfg, const Plan& plan,
                        BatchPipeline& pipeline, io::OutputStore& store, Progress& progress, PhaseTimes& times) {
  const dist::Range mine = plan.rank_batches[static_cast<size_t>(comm.rank())];
  RoundsResult r;
  const auto t0 = std::chrono::steady_clock::now();
  auto last_flush = t0;
  std::vector<int64_t>& recorded = r.recorded_since_flush;
  for (int64_t round = 0; round < plan.rounds(); ++round) {
    std::vector<int64_t> flags{0, 0};  // stop requested, checkpoint due
    const auto sample_batch = [&] {
      if (round >= mine.size() || stop::requested()) return;
      const int64_t j = mine.begin + round;
      const auto t_batch = std::chrono::steady_clock::now();
      try {
        const std::vector<int64_t> to_write = plan.pending_rows(j);
        r.written += pipeline.run(plan.batch_rows(j), to_write);
        recorded.insert(recorded.end(), to_write.begin(), to_write.end());
      } catch (const BatchAbandoned&) {
        return;
      }
      log::debug("batch {}: samples [{}..{}] in {:.2f} s", j, plan.batch_rows(j).front(), plan.batch_rows(j).back(),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t_batch).count());
      progress.update(r.written);
    };
    try {
      double working = 0.0;  // this rank's own part of the round; the rest of it is waiting for the others
      const auto round_start = std::chrono::steady_clock::now();
      const auto agreed = agree(comm, "sampling", [&] {
        sample_batch();
        flags[0] = stop::requested() ? 1 : 0;
        const auto now = std::chrono::steady_clock::now();
        flags[1] = comm.rank() == 0 && std::chrono::duration<double>(now - last_flush).count() >= cfg.run.checkpoint_interval;
        working = std::chrono::duration<double>(now - round_start).count();
      }, flags);
      times[Phase::kWait] +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - round_start).count() - working;
      if (agreed[0] != 0) {
        r.stopped = true;
        break;
      }
      if (agreed[1] != 0) {
        PhaseTimer timer(times, Phase::kCheckpoint);
        agree(comm, "checkpoint", [&] {
          store.flush();  // a durable checkpoint: the records written so far are on disk,
          mark_durable(store, recorded);  // so a resume need not read those samples back
        });
        last_flush = std::chrono::steady_clock::now();
      }
    } catch (const Error& e) {
      Error agreed(std::string(e.what()) + "\n---> HINT: the output stays resumable: fix the cause (e.g. free "
                                           "disk space) and run the same command again");
      agreed.set_on_all_ranks();
      throw agreed;
    }
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

/// The run's summary, reduced over the ranks (COLLECTIVE).
JobSummary summarize(const dist::Comm& comm, const RoundsResult& rounds, const BatchPipeline& pipeline,
                     int64_t done_before, int64_t total, const std::string& output_path) {
  JobSummary summary;
  summary.images_written = comm.allreduce(rounds.written, dist::ReduceOp::kSum);
  summary.forwards = comm.allreduce(pipeline.counter().calls, dist::ReduceOp::kSum);
  summary.seconds = comm.allreduce(rounds.seconds, dist::ReduceOp::kMax);
  summary.output_path = output_path;
  summary.samples_done = done_before + summary.images_written;
  summary.samples_total = total;
  summary.stopped = rounds.stopped && summary.samples_done < summary.samples_total;
  return summary;
}

/// Where the time went: each rank's phase times summed and maxed over the ranks, logged by rank 0 as shares of
/// the slowest rank's `work_seconds` (COLLECTIVE).
void report_phases(const dist::Comm& comm, const PhaseTimes& times, double work_seconds) {
  const std::vector<double> sum = comm.allreduce(times.to_vector(), dist::ReduceOp::kSum);
  const std::vector<double> max = comm.allreduce(times.to_vector(), dist::ReduceOp::kMax);
  const double wall = comm.allreduce(work_seconds, dist::ReduceOp::kMax);
  if (comm.rank() == 0) print_phases(sum, max, wall, comm.size());
}

}  // namespace

JobSummary run_sampling_job(const dist::Comm& comm, const config::RunConfig& cfg, const JobOptions& opts) {
  const bool root = comm.rank() == 0;
  const int64_t N = cfg.identities.count, K = cfg.identities.images_per_identity;
  const torch::Device device = set_up_rank(comm, cfg);

  // ---- inputs and model, validated before any expensive work --------------------------------------------
  Sources sources;
  agree(comm, "identities", [&] { sources = validate_sources(cfg, comm.rank(), comm.size()); });
  std::unique_ptr<sampler::GuidanceSchedule> guidance;
  agree(comm, "guidance", [&] { guidance = make_guidance(cfg, sources.strategy, root); });
  ModelBundle mb;
  agree(comm, "model", [&] { mb = load_model(cfg, device); });
  sampler::SamplerSpec spec;
  std::vector<int64_t> timesteps;
  agree(comm, "sampler", [&] {
    guidance->check(mb.schedule.T);
    spec = sampler_spec(cfg);
    timesteps = sampler::timesteps(spec, mb.schedule.T);
  });
  if (cfg.sampler.kind == "ddim" && root && static_cast<int64_t>(timesteps.size()) != cfg.sampler.steps) {
    log::info("DDIM: sampler.steps = {} gives stride {} and {} visited timesteps", cfg.sampler.steps,
              mb.schedule.T / cfg.sampler.steps, timesteps.size());
  }
  std::vector<double> weights;
  for (int64_t i : timesteps) weights.push_back(guidance->weight(i, mb.schedule.T));

  // ---- the run's identity (rank 0 hashes each file once) and its output file ------------------------------
  std::map<std::string, std::string> attrs;
  agree(comm, "fingerprint", [&] {
    if (root) {
      attrs = run_attributes(cfg, sources.identities, sources.pool_is_identity_set ? nullptr : &sources.pool, mb,
                             *guidance);
    }
  });
  attrs = bcast_map(comm, attrs);
  RunLock lock;
  const OutputDecision out = decide_output(comm, cfg, opts, attrs, lock);
  attrs[kComputeBatchSize] = std::to_string(out.batch_size);  // recorded only when the file is created
  const Plan full = make_plan(N, K, all_samples(N * K), out.batch_size, timesteps, weights, comm.size());
  if (root) print_plan(full, cfg, mb, *guidance);
  if (opts.dry_run) return JobSummary{};

  // ---- negatives (distributed), the store, what is left to do -------------------------------------------
  const auto work_start = std::chrono::steady_clock::now();
  PhaseTimes times;
  std::optional<PhaseTimer> phase(std::in_place, times, Phase::kNegatives);
  const RankNegatives negs = select_negatives(comm, cfg, sources, full.rank_identities[static_cast<size_t>(comm.rank())],
                                                device);
  phase.reset();
  const std::unique_ptr<io::OutputStore> store = open_output(comm, cfg.output, out.start_new, store_layout(cfg, mb), attrs);
  // Contexts and negatives are deterministic: (re)writing them on every start keeps them complete.
  agree(comm, "output", [&] {
    store->write_contexts(negs.my_ids.begin, negs.my_contexts);
    store->write_negatives(negs.my_ids.begin, negs.selection.negative_index, negs.selection.negative_similarity);
  });
  phase.emplace(times, Phase::kVerify);
  const std::vector<int64_t> pending = pending_samples(comm, *store, N * K, cfg.output.store_latents);
  phase.reset();
  const int64_t done_before = N * K - static_cast<int64_t>(pending.size());
  const Plan plan = make_plan(N, K, pending, out.batch_size, timesteps, weights, comm.size());
  if (root && !out.start_new) {
    log::info("resume: {}/{} samples already done and verified; {} to do in {} batches", done_before, N * K,
              pending.size(), plan.batches);
  }

  // ---- the batch pipeline in rounds -----------------------------------------------------------------------
  PipelineSetup setup{cfg, mb, *guidance, device, spec, out.batch_size, {}, {}, {}};
  setup.touched = touched_identities(plan, plan.rank_batches[static_cast<size_t>(comm.rank())]);
  TouchedContexts contexts = touched_contexts(comm, cfg, sources, negs, setup.touched);
  setup.pos_rows = std::move(contexts.pos);
  setup.neg_rows = std::move(contexts.neg);
  BatchPipeline pipeline(setup, *store);
  Progress progress(root, N * K, done_before, plan.rank_samples(comm.rank()), cfg.run.progress_interval);
  const RoundsResult rounds = run_rounds(comm, cfg, plan, pipeline, *store, progress, times);
  phase.emplace(times, Phase::kCheckpoint);
  std::vector<int64_t> recorded = rounds.recorded_since_flush;
  agree(comm, "checkpoint", [&] { store->flush(); });
  agree(comm, "checkpoint", [&] {  // the last records' marks, and a flush that puts them on disk
    mark_durable(*store, recorded);
    store->flush();
  });
  agree(comm, "close", [&] { store->close(); });
  phase.reset();
  for (size_t p = 0; p < times.seconds.size(); ++p) times.seconds[p] += pipeline.times().seconds[p];
  const double work_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - work_start).count();

  // ---- report ---------------------------------------------------------------------------------------------
  const JobSummary summary = summarize(comm, rounds, pipeline, done_before, N * K, cfg.output.path);
  if (root) print_summary(summary, N, K, comm.size());
  report_phases(comm, times, work_seconds);
  return summary;
}

}  // namespace adaptdiff::job
