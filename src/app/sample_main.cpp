// adaptdiff-sample: the MPI-distributed sampling job.
//   mpiexec -n R adaptdiff-sample CONFIG.toml [--set section.key=value ...] [--dry-run] [--force-new]
//   adaptdiff-sample --status OUTPUT.h5
// Exit codes: 0 done, 1 runtime failure, 2 bad command line or configuration, 3 stopped on a signal with a
// checkpoint and work remaining (see README.md).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "adaptdiff/version.hpp"
#include "config/run_config.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/stop.hpp"
#include "dist/agree.hpp"
#include "dist/mpi_environment.hpp"
#include "job/job.hpp"
#include "job/status.hpp"


int main(int argc, char** argv) {
  CLI::App app{"adaptdiff-sample: generate a labelled synthetic face dataset with identity-conditioned latent\n"
               "diffusion and adaptive negative guidance (AdaptDiff), on one or many MPI ranks.\n"
               "Run with mpiexec/srun for several ranks; all ranks write one HDF5 file."};
  std::string config_path, status_path;
  std::vector<std::string> overrides;
  bool dry_run = false, force_new = false, rebatch = false;
  auto* config_opt = app.add_option("config", config_path, "run configuration (TOML), e.g. configs/quickstart.toml");
  auto* status_opt = app.add_option("--status", status_path,
                                    "print the progress of an existing output file and exit (0 complete, 3 incomplete, 2 missing or "
                                    "not an output file)")
                         ->type_name("OUTPUT.h5");
  status_opt->excludes(config_opt);
  app.add_flag("--force-new", force_new,
               "start over even if the output exists (it is replaced); without it a run of the same "
               "configuration resumes the existing output and a foreign output is refused");
  app.add_option("--set", overrides, "override a config value: section.key=value (repeatable)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  app.add_flag("--rebatch", rebatch,
               "on resume, compute the remaining samples with run.batch_size instead of the batch size the output "
               "was created with; their bytes may then differ from an uninterrupted run (the file records it)");
  app.add_flag("--dry-run", dry_run, "validate everything, print the plan (ranks, shards, forwards, memory) and exit");
  app.set_version_flag("--version", std::string("adaptdiff-sample ") + adaptdiff::kVersion);

  adaptdiff::stop::install_handlers();  // a stop request during start-up counts too
  adaptdiff::dist::MpiEnvironment mpi(&argc, &argv);
  const adaptdiff::dist::Comm& world = mpi.world();
  const bool root = world.rank() == 0;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Every rank parses the same arguments; only rank 0 prints.
    if (root) return app.exit(e) == 0 ? 0 : static_cast<int>(adaptdiff::ExitCode::kUsage);
    return e.get_exit_code() == 0 ? 0 : static_cast<int>(adaptdiff::ExitCode::kUsage);
  }

  if (!status_path.empty()) {
    if (!root) return 0;
    try {
      return adaptdiff::job::print_status(status_path, std::cout);
    } catch (const std::exception& e) {
      // The file named on the command line is missing or not an output file: bad input.
      std::fprintf(stderr, "adaptdiff-sample: %s\n", e.what());
      return static_cast<int>(adaptdiff::ExitCode::kUsage);
    }
  }
  if (config_path.empty()) {
    if (root) std::fprintf(stderr, "adaptdiff-sample: a CONFIG.toml (or --status OUTPUT.h5) is required; see --help\n");
    return static_cast<int>(adaptdiff::ExitCode::kUsage);
  }

  adaptdiff::config::RunConfig cfg;
  try {
    // Every rank reads the file (a rank may see another file system): agree on the outcome.
    adaptdiff::dist::agree(world, "config", [&] { cfg = adaptdiff::config::load_run_config(config_path, overrides); });
  } catch (const std::exception& e) {
    if (root) std::fprintf(stderr, "adaptdiff-sample: %s\n", e.what());
    return adaptdiff::exit_code_for(e);
  }
  adaptdiff::log::configure(world.rank(), cfg.run.log_level);
  if (root) {
    adaptdiff::log::info("adaptdiff-sample {} on {} rank(s), config {}", adaptdiff::kVersion, world.size(),
                         cfg.config_path);
  }
  adaptdiff::stop::set_deadline(cfg.run.signal_deadline);
  try {
    adaptdiff::job::JobOptions opts;
    opts.dry_run = dry_run;
    opts.force_new = force_new;
    opts.rebatch = rebatch;
    const auto summary = adaptdiff::job::run_sampling_job(world, cfg, opts);
    return static_cast<int>(summary.stopped ? adaptdiff::ExitCode::kCheckpointed : adaptdiff::ExitCode::kSuccess);
  } catch (const std::exception& e) {
    // Errors raised through the job's agreement step are identical on all ranks: rank 0 reports, all exit;
    // anything else may have hit one rank only and aborts the whole job so no rank hangs.
    return adaptdiff::dist::exit_on_failure(world, e);
  }
}
