// adaptdiff-eval: identity separability of face embeddings (the paper's Figure 1 and its metrics).
//   adaptdiff-eval --embeddings E.h5 --out DIR [--convention pyeer|strict] [--impostor-pairs N --seed S]
//   adaptdiff-eval --images DATA.h5 --fr-model model.pt --out DIR [--bgr] [--batch-size B] [--device D] ...
// Writes DIR/metrics.json and DIR/histogram.png and prints a table. Runs on one rank or many (mpiexec): the
// numbers do not depend on the rank count. Exit codes: 0 done, 1 runtime failure (also: histogram not drawn,
// metrics.json written), 2 bad command line or input (see README.md).
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>

#include "adaptdiff/version.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "dist/agree.hpp"
#include "dist/mpi_environment.hpp"
#include "eval/embed.hpp"
#include "eval/metrics.hpp"
#include "eval/pairs.hpp"
#include "eval/report.hpp"
#include "eval/scores.hpp"
#include "io/eval_files.hpp"

namespace {

namespace eval = adaptdiff::eval;
using adaptdiff::ExitCode;

struct Args {
  std::string embeddings, images, fr_model, out, convention = "pyeer", log_level = "info";
  int64_t impostor_pairs = 0;
  uint64_t seed = 0;
  eval::EmbedOptions embed;
  bool no_plot = false, keep_scores = false;
};


void add_options(CLI::App& app, Args& a) {
  auto* emb = app.add_option("--embeddings", a.embeddings,
                             "HDF5 file with datasets 'embeddings' (float32 [N, D]) and 'identity' (int64 [N])")
                  ->type_name("E.h5")
                  ->check(CLI::ExistingFile);
  auto* img = app.add_option("--images", a.images,
                             "a sampling output (adaptdiff-sample): embed its done samples with --fr-model first, "
                             "save DIR/embeddings.h5, then evaluate")
                  ->type_name("DATA.h5")
                  ->check(CLI::ExistingFile);
  emb->excludes(img);
  auto* fr = app.add_option("--fr-model", a.fr_model,
                            "TorchScript face-recognition model: forward(x: float32 [B, 3, 112, 112], "
                            "(pixel - 127.5) / 127.5) -> [B, D]")
                 ->type_name("model.pt")
                 ->check(CLI::ExistingFile);
  fr->needs(img);
  img->needs(fr);
  app.add_option("--out", a.out, "output folder (created if missing): metrics.json, histogram.png")
      ->type_name("DIR")
      ->required();
  app.add_option("--convention", a.convention,
                 "threshold-sweep convention: pyeer (default; pyeer 0.5.6's geteerinf on the same scores) or "
                 "strict (interpolated EER, lowest FNMR at FMR <= 1% / 0.1%)")
      ->check(CLI::IsMember({"pyeer", "strict"}));
  app.add_option("--impostor-pairs", a.impostor_pairs,
                 "score a seeded random subset of this many distinct impostor pairs (default 0: all impostor pairs)")
      ->type_name("N")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--seed", a.seed, "seed of the impostor-pair subset (mt19937_64; default 0)")->type_name("S");
  app.add_flag("--bgr", a.embed.bgr, "--images: feed BGR channel order (models trained on OpenCV-read images)");
  app.add_option("--batch-size", a.embed.batch_size, "--images: images per forward (default 64)")
      ->check(CLI::PositiveNumber);
  app.add_option("--device", a.embed.device, "--images: auto (default), cpu, cuda (GPU local_rank % count), cuda:N");
  app.add_option("--progress-interval", a.embed.progress_interval, "seconds between progress lines (default 10)");
  app.add_flag("--no-plot", a.no_plot, "do not draw histogram.png (no Python needed)");
  app.add_flag("--keep-scores", a.keep_scores,
               "keep DIR/scores.h5 (float64 datasets 'genuine' and 'impostor', canonical pair order)");
  app.add_option("--log-level", a.log_level, "debug, info (default), warn, error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  app.footer(
      "Pairs: all genuine pairs (i < j, same identity); all impostor pairs or --impostor-pairs N of them.\n"
      "Scores: cosine similarity in float64. metrics.json keys: eer, fmr100, fmr1000 (FNMR at FMR 1% / 0.1%),\n"
      "genuine_mean, genuine_std, impostor_mean, impostor_std (population), fdr = (mu_G - mu_I)^2 / (sigma_G^2 +\n"
      "sigma_I^2), n_genuine, n_impostor. The histogram is drawn by tools/plot_histogram.py with matplotlib: the\n"
      "interpreter is $ADAPTDIFF_PYTHON, else build/pyenv/bin/python3 (tools/pyenv.sh), else /usr/bin/python3. Without\n"
      "matplotlib metrics.json is still written and the exit code is 1 (use --no-plot to skip the plot).\n"
      "Exit codes: 0 done, 1 runtime failure or histogram not drawn, 2 bad command line or input.");
}

// Creates DIR and checks that a file can be created in it. Throws InputError.
void prepare_out_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir)) {
    throw adaptdiff::InputError("eval: cannot create the output folder '" + dir + "'" +
                                (ec ? ": " + ec.message() : std::string()));
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    throw adaptdiff::InputError("eval: the output folder '" + dir + "' is not writable");
  }
}

// Runs `step`, which reads the input file; a file that cannot be opened or read as what it should be is bad input
// (exit 2, README "Exit codes"), so its IoError becomes an InputError with the same message.
void as_input_error(const std::function<void()>& step) {
  try {
    step();
  } catch (const adaptdiff::IoError& e) {
    adaptdiff::InputError error(e.what());
    if (e.on_all_ranks()) error.set_on_all_ranks();
    throw error;
  }
}

int evaluate(const adaptdiff::dist::Comm& world, const Args& a) {
  const bool root = world.rank() == 0;
  adaptdiff::dist::agree(world, "eval::out", [&] {
    if (root) prepare_out_dir(a.out);
  });
  adaptdiff::io::EmbeddingsFile data;
  std::string source = a.embeddings;
  if (!a.images.empty()) {
    source = a.images;
    eval::EmbedOptions opts = a.embed;
    opts.model_path = a.fr_model;
    eval::Embedded e;
    e = eval::embed_store(world, a.images, opts);
    if (root && e.skipped > 0) {
      adaptdiff::log::warn("{} of {} samples of '{}' are not done (sample_checksum 0): skipped", e.skipped, e.rows,
                           a.images);
    }
    data = {e.embeddings, e.identity};
  } else {
    as_input_error([&] {
      adaptdiff::dist::agree(world, "eval::read", [&] { data = adaptdiff::io::read_embeddings_file(a.embeddings); });
    });
  }
  eval::PairPlan plan;
  std::vector<int64_t> identity;
  adaptdiff::dist::agree(world, "eval::plan", [&] {
    eval::validate_embeddings(data.embeddings, data.identity, source);
    data.embeddings = data.embeddings.contiguous();
    const torch::Tensor id = data.identity.contiguous();
    identity.assign(id.data_ptr<int64_t>(), id.data_ptr<int64_t>() + id.numel());
    plan = eval::plan_pairs(identity, a.impostor_pairs, a.seed);
  });
  if (!a.images.empty()) {  // saved once they are known to be usable, so bad input writes nothing
    const std::string path = a.out + "/embeddings.h5";
    adaptdiff::dist::agree(world, "eval::save", [&] {
      if (root) adaptdiff::io::write_embeddings_file(path, data);
    });
    if (root) adaptdiff::log::info("wrote {} ({} embeddings of width {})", path, data.embeddings.size(0),
                                   data.embeddings.size(1));
  }
  if (root) {
    adaptdiff::log::info("{} embeddings, {} identities ({} with one image): {} genuine and {} impostor pairs{}",
                         identity.size(), plan.identities, plan.single_image_identities, plan.genuine.size(),
                         plan.n_impostor, plan.all_impostors ? "" : " (random subset)");
  }
  const eval::ScoreSet scores = eval::score_pairs(world, data.embeddings, identity, plan);
  if (!root) return 0;

  const eval::Convention convention = eval::parse_convention(a.convention);
  const eval::Metrics m = eval::compute_metrics(scores.genuine, scores.impostor, convention);
  if (!m.curves_meet) adaptdiff::log::warn("the FMR and FNMR curves do not meet: EER set to 1 (as pyeer does)");
  const eval::RunInfo info{source, convention, plan.all_impostors, plan.total_impostor_pairs, a.seed,
                           static_cast<int64_t>(identity.size()), plan.identities};
  const std::string metrics_path = a.out + "/metrics.json";
  eval::write_text_file(metrics_path, eval::metrics_json(m, info));
  eval::print_table(std::cout, m, info);
  std::cout.flush();
  const std::string scores_path = a.out + "/scores.h5";
  if (a.keep_scores || !a.no_plot) adaptdiff::io::write_scores_file(scores_path, scores.genuine, scores.impostor);
  std::string plot_error;
  if (!a.no_plot) plot_error = eval::run_plot(eval::default_plot_command(), scores_path, metrics_path, a.out + "/histogram.png");
  if (!a.keep_scores) std::filesystem::remove(scores_path);
  if (!plot_error.empty()) {
    adaptdiff::log::error("histogram.png not drawn: {} ({} was written)", plot_error, metrics_path);
    return static_cast<int>(ExitCode::kFailure);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"adaptdiff-eval: identity separability of face embeddings: genuine/impostor cosine-similarity\n"
               "distributions, EER, FMR100, FMR1000 and FDR (the paper's Figure 1). Run with mpiexec for many ranks."};
  Args a;
  add_options(app, a);
  app.set_version_flag("--version", std::string("adaptdiff-eval ") + adaptdiff::kVersion);
  adaptdiff::dist::MpiEnvironment mpi(&argc, &argv);
  const adaptdiff::dist::Comm& world = mpi.world();
  const bool root = world.rank() == 0;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (root) return app.exit(e) == 0 ? 0 : static_cast<int>(ExitCode::kUsage);
    return e.get_exit_code() == 0 ? 0 : static_cast<int>(ExitCode::kUsage);
  }
  if (a.embeddings.empty() && a.images.empty()) {
    if (root) std::fprintf(stderr, "adaptdiff-eval: give --embeddings E.h5 or --images DATA.h5 --fr-model M.pt; see --help\n");
    return static_cast<int>(ExitCode::kUsage);
  }
  adaptdiff::log::configure(world.rank(), a.log_level);
  try {
    return evaluate(world, a);
  } catch (const std::exception& e) {
    return adaptdiff::dist::exit_on_failure(world, e);
  }
}
