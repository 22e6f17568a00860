// adaptdiff-contexts: identity files for the sampling job.
//   adaptdiff-contexts create --count N --seed S --out ids.h5         synthetic uniform contexts
//   adaptdiff-contexts import SRC --out ids.h5                         from the original project's files
//   mpiexec -n R adaptdiff-contexts negatives --identities ids.h5 --strategy far --out table.h5 [--csv]
// Exit codes: 0 done, 1 runtime failure, 2 bad command line or input (see README.md).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "adaptdiff/version.hpp"
#include "contexts/import.hpp"
#include "contexts/negative_table.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "dist/agree.hpp"
#include "dist/mpi_environment.hpp"
#include "io/small_file.hpp"
#include "negatives/strategy.hpp"

namespace {

using namespace adaptdiff;

struct Options {
  std::string out, source, identities, strategy = "far";
  int64_t count = 0, dim = 512, block_rows = 1024;
  uint64_t seed = 0;
  bool csv = false, force = false;
};

void run_create(const dist::Comm& world, const Options& o) {
  dist::agree(world, "create", [&] {
    if (world.rank() != 0) return;
    if (o.count < 1) throw InputError("adaptdiff-contexts create: --count must be at least 1");
    io::check_new_output(o.out, o.force, "adaptdiff-contexts create");
    io::ContextSource src;  // the job's own generator: equal bits to identities.source = "synthetic_uniform"
    src.seed = o.seed;
    io::SmallFile file;
    file.arrays.emplace_back("contexts", io::read_contexts(src, 0, o.count, o.dim));
    file.attributes["source"] = io::describe(src);
    io::write_small_file(o.out, file);
    log::info("create: {} synthetic uniform contexts of width {} (seed {}) -> {}", o.count, o.dim, o.seed, o.out);
  });
}

void run_import(const dist::Comm& world, const Options& o) {
  dist::agree(world, "import", [&] {
    if (world.rank() != 0) return;
    io::check_new_output(o.out, o.force, "adaptdiff-contexts import");
    const contexts::ImportedContexts imported = contexts::import_contexts(o.source, o.dim);
    io::SmallFile file;
    file.arrays.emplace_back("contexts", imported.contexts);
    file.strings.emplace_back("identity_name", imported.names);
    file.attributes["source"] = o.source;
    file.attributes["source_format"] = imported.format;
    io::write_small_file(o.out, file);
    log::info("import: {} identities of width {} from '{}' ({}) -> {}; first '{}', last '{}'", imported.names.size(),
              o.dim, o.source, imported.format, o.out, imported.names.front(), imported.names.back());
  });
}

/// The CSV beside the HDF5 table: `out` with its extension (of the file name only) replaced by ".csv".
std::string csv_path(const std::string& out) {
  return std::filesystem::path(out).replace_extension(".csv").string();
}

void write_csv(const std::string& path, const contexts::NegativeTable& table) {
  std::ofstream f(path, std::ios::trunc);
  f << "identity,negative_index,negative_similarity\n";
  char buf[64];
  for (int64_t i = 0; i < table.negative_index.numel(); ++i) {
    std::snprintf(buf, sizeof buf, "%.9g", table.negative_similarity[i].item<float>());
    f << i << ',' << table.negative_index[i].item<int64_t>() << ',' << buf << '\n';
  }
  if (!f.flush()) throw IoError("adaptdiff-contexts negatives: cannot write '" + path + "'");
}

void run_negatives(const dist::Comm& world, const Options& o) {
  negatives::Strategy strategy{};
  io::ContextSource src;
  dist::agree(world, "arguments", [&] {
    strategy = negatives::parse_strategy(o.strategy);
    src = io::parse_context_source(o.identities, "");
    if (src.kind == io::ContextSource::kSyntheticUniform)
      throw InputError("adaptdiff-contexts negatives: --identities must be a file (.h5 or .npy); make one with "
                       "'adaptdiff-contexts create'");
    if (world.rank() != 0) return;
    io::check_new_output(o.out, o.force, "adaptdiff-contexts negatives");
    if (o.csv) {
      if (csv_path(o.out) == o.out)
        throw InputError("adaptdiff-contexts negatives: --out '" + o.out + "' ends in .csv; name the HDF5 table "
                         "otherwise (the CSV goes beside it)");
      io::check_new_output(csv_path(o.out), o.force, "adaptdiff-contexts negatives");
    }
  });
  const contexts::NegativeTable table =
      contexts::select_negative_table(world, src, strategy, o.seed, o.dim, o.block_rows);
  dist::agree(world, "write", [&] {
    if (world.rank() != 0) return;
    const int64_t n = table.negative_index.numel();
    io::SmallFile file;
    file.arrays.emplace_back("identity", torch::arange(n, torch::kLong));
    file.arrays.emplace_back("negative_index", table.negative_index);
    file.arrays.emplace_back("negative_similarity", table.negative_similarity);
    file.attributes["strategy"] = negatives::fingerprint(strategy, o.seed, "");
    file.attributes["identities"] = io::describe(src);
    io::write_small_file(o.out, file);
    const std::string csv = o.csv ? csv_path(o.out) : "";
    if (o.csv) write_csv(csv, table);
    log::info("negatives: '{}' for {} identities on {} rank(s) -> {}{}; {}", o.strategy, n, world.size(), o.out,
              csv.empty() ? "" : " and " + csv, contexts::similarity_summary(table.negative_similarity));
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"adaptdiff-contexts: identity files (contexts float32 [N, 512]) for adaptdiff-sample.\n"
               "Exit codes: 0 done, 1 runtime failure, 2 bad command line or input (nothing written)."};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("adaptdiff-contexts ") + kVersion);
  Options o;
  auto* create = app.add_subcommand("create", "synthetic uniform contexts: unit-norm standard-normal vectors, the "
                                              "same bits as identities.source = \"synthetic_uniform\" with that seed");
  create->add_option("--count", o.count, "number of identities N")->required();
  create->add_option("--seed", o.seed, "generator seed (identities.seed)");
  auto* import = app.add_subcommand(
      "import", "contexts from the original project's files: a torch.save'd dict {name: float32 [512]} (often "
                "named .npy; names and order kept, dataset identity_name) or a plain .npy array [N, 512] "
                "(rows normalised to unit norm)");
  import->add_option("source", o.source, "the file to import")->required()->check(CLI::ExistingFile);
  auto* negs = app.add_subcommand("negatives", "the negative identity of every identity, chosen by the job's "
                                               "distributed selection (run with mpiexec for several ranks)");
  negs->add_option("--identities", o.identities, "identity file: ids.h5 (dataset contexts), ids.h5:/dataset or .npy")
      ->required();
  negs->add_option("--strategy", o.strategy, "far | close | median | previous | random | zero | none")
      ->capture_default_str();
  negs->add_option("--seed", o.seed, "seed of the random strategy");
  negs->add_option("--block-rows", o.block_rows, "rows per similarity block (results do not depend on it)")
      ->check(CLI::PositiveNumber);
  negs->add_flag("--csv", o.csv, "also write the table as CSV beside --out (same name, .csv)");
  for (auto* sub : {create, import, negs}) {
    sub->add_option("--out", o.out, "output HDF5 file")->required();
    sub->add_option("--dim", o.dim, "context width")->capture_default_str()->check(CLI::PositiveNumber);
    sub->add_flag("--force", o.force, "replace an existing output file");
  }

  dist::MpiEnvironment mpi(&argc, &argv);
  const dist::Comm& world = mpi.world();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = e.get_exit_code() == 0 ? 0 : static_cast<int>(ExitCode::kUsage);
    if (world.rank() == 0) app.exit(e);
    return code;
  }
  log::configure(world.rank());
  try {
    if (create->parsed()) run_create(world, o);
    if (import->parsed()) run_import(world, o);
    if (negs->parsed()) run_negatives(world, o);
    return 0;
  } catch (const std::exception& e) {
    return dist::exit_on_failure(world, e);
  }
}
