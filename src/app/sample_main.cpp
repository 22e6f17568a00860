// adaptdiff-sample: the MPI-distributed sampling job.
//   mpiexec -n R adaptdiff-sample CONFIG.toml [--set section.key=value ...] [--dry-run]
// Exit codes: 0 done, 1 runtime failure, 2 bad command line or configuration (see README.md).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "adaptdiff/version.hpp"
#include "config/run_config.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "dist/mpi_environment.hpp"
#include "job/job.hpp"

namespace {
int exit_code_of(const std::exception& e) {
  if (dynamic_cast<const adaptdiff::ConfigError*>(&e) != nullptr) return static_cast<int>(adaptdiff::ExitCode::kUsage);
  return static_cast<int>(adaptdiff::ExitCode::kFailure);
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"adaptdiff-sample: generate a labelled synthetic face dataset with identity-conditioned latent\n"
               "diffusion and adaptive negative guidance (AdaptDiff), on one or many MPI ranks.\n"
               "Run with mpiexec/srun for several ranks; all ranks write one HDF5 file."};
  std::string config_path;
  std::vector<std::string> overrides;
  bool dry_run = false;
  app.add_option("config", config_path, "run configuration (TOML), e.g. configs/quickstart.toml")->required();
  app.add_option("--set", overrides, "override a config value: section.key=value (repeatable)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  app.add_flag("--dry-run", dry_run, "validate everything, print the plan (ranks, shards, forwards, memory) and exit");
  app.set_version_flag("--version", std::string("adaptdiff-sample ") + adaptdiff::kVersion);

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

  adaptdiff::config::RunConfig cfg;
  try {
    // Every rank reads the same file: a config error happens on all of them alike.
    cfg = adaptdiff::config::load_run_config(config_path, overrides);
  } catch (const std::exception& e) {
    if (root) std::fprintf(stderr, "adaptdiff-sample: %s\n", e.what());
    return exit_code_of(e);
  }
  adaptdiff::log::configure(world.rank(), cfg.run.log_level);
  if (root) {
    adaptdiff::log::info("adaptdiff-sample {} on {} rank(s), config {}", adaptdiff::kVersion, world.size(),
                         cfg.config_path);
  }
  try {
    adaptdiff::job::JobOptions opts;
    opts.dry_run = dry_run;
    adaptdiff::job::run_sampling_job(world, cfg, opts);
    return static_cast<int>(adaptdiff::ExitCode::kSuccess);
  } catch (const adaptdiff::Error& e) {
    // Errors raised through the job's agreement step are identical on all ranks: rank 0 reports, all exit.
    if (e.on_all_ranks() || world.size() == 1) {
      if (root) adaptdiff::log::error("{}", e.what());
      return exit_code_of(e);
    }
    adaptdiff::log::error("{}", e.what());
    world.abort(exit_code_of(e));
    return exit_code_of(e);
  } catch (const std::exception& e) {
    // Anything else may have hit one rank only: report it and abort the whole job so no rank hangs.
    adaptdiff::log::error("unexpected failure: {}", e.what());
    world.abort(static_cast<int>(adaptdiff::ExitCode::kFailure));
    return static_cast<int>(adaptdiff::ExitCode::kFailure);
  }
}
