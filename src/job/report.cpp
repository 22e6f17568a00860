#include "job/report.hpp"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/stop.hpp"
#include "job/phases.hpp"

namespace adaptdiff::job {

namespace fs = std::filesystem;

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024.0 && u < 4) b /= 1024.0, ++u;
  std::ostringstream os;
  os.precision(b < 10 ? 2 : 1);
  os << std::fixed << b << " " << units[u];
  return os.str();
}

void print_plan(const Plan& plan, const config::RunConfig& cfg, const ModelBundle& mb,
                const sampler::GuidanceSchedule& guidance) {
  const bool ddim = cfg.sampler.kind == "ddim";
  log::info("plan: {} identities x {} images = {} samples, {} batches of {} on {} rank(s)", plan.identities,
            plan.images_per_identity, plan.samples, plan.batches, plan.batch_size, plan.world_size);
  log::info("plan: {} {} steps per batch ({} guided with a 2B forward), {} forward rows per batch, "
            "guidance '{}', negatives '{}'",
            plan.timesteps.size(), ddim ? "DDIM" : "DDPM", plan.guided_steps, plan.rows_per_batch(), guidance.name(),
            cfg.negatives.strategy);
  for (int r = 0; r < plan.world_size; ++r) {
    const Span b = plan.rank_batches[static_cast<size_t>(r)], ids = plan.rank_identities[static_cast<size_t>(r)];
    log::info("plan: rank {}: batches [{}, {}) ({} samples), identity shard [{}, {})", r, b.begin, b.end,
              plan.rank_samples(r), ids.begin, ids.end);
  }
  const double image_bytes = static_cast<double>(plan.samples) * mb.image_height * mb.image_width * 3;
  const double latent = static_cast<double>(mb.latent_shape[0] * mb.latent_shape[1] * mb.latent_shape[2]);
  const double per_rank = static_cast<double>(plan.batch_size) *
                          (latent * 4 * 6 + static_cast<double>(mb.image_height * mb.image_width) * (3 * 4 * 2 + 3));
  log::info("plan: output {} ({} of images), per-rank sampling buffers ~{} plus the model and its activations",
            cfg.output.path, human_bytes(image_bytes), human_bytes(per_rank));
  if (plan.batch_size > plan.samples) {
    log::warn("plan: run.batch_size = {} exceeds the {} samples: every forward is padded to {} rows", plan.batch_size,
              plan.samples, plan.batch_size);
  }
  if (plan.batches < plan.world_size) {
    log::warn("plan: {} batch(es) for {} ranks: {} rank(s) will have no work (use fewer ranks or a smaller "
              "run.batch_size)",
              plan.batches, plan.world_size, plan.world_size - plan.batches);
  }
}

void print_summary(const JobSummary& summary, int64_t identities, int64_t images_per_identity, int world_size) {
  const double rate = summary.seconds > 0 ? static_cast<double>(summary.images_written) / summary.seconds : 0.0;
  if (summary.stopped) {
    log::warn("stopped on signal {}: checkpoint written, {}/{} samples done; run the same command again to "
              "resume (exit code {})",
              stop::signal_number(), summary.samples_done, summary.samples_total,
              static_cast<int>(ExitCode::kCheckpointed));
  } else {
    log::info("done: {} images ({} identities x {}) in {:.1f} s = {:.2f} images/s on {} rank(s); {} forward passes",
              summary.images_written, identities, images_per_identity, summary.seconds, rate, world_size,
              summary.forwards);
  }
  std::error_code ec;
  const auto bytes = fs::file_size(summary.output_path, ec);
  log::info("wrote {} ({})", summary.output_path,
            ec ? std::string("size unknown") : human_bytes(static_cast<double>(bytes)));
}

void print_phases(const std::vector<double>& sum_seconds, const std::vector<double>& max_seconds, double wall,
                  int world_size) {
  if (!(wall > 0.0)) return;
  std::string text;
  double covered = 0.0;
  for (size_t p = 0; p < sum_seconds.size() && p < phase_names().size(); ++p) {
    const double mean = sum_seconds[p] / world_size;
    covered += mean;
    if (mean < 0.0005 * wall) continue;
    text += fmt::format("{}{} {:.1f}%", text.empty() ? "" : ", ", phase_names()[p], 100.0 * mean / wall);
    if (world_size > 1) text += fmt::format(" (max {:.1f}%)", 100.0 * max_seconds[p] / wall);
  }
  log::info("time shares of {:.1f} s (mean over {} rank(s)): {}, other {:.1f}%", wall, world_size, text,
            std::max(0.0, 100.0 * (1.0 - covered / wall)));
}

}  // namespace adaptdiff::job
