// adaptdiff-export: a sampling output -> a training set (imagefolder, insightface RecordIO) or contact sheets.
//   [mpiexec -n R] adaptdiff-export DATA.h5 --out DIR --format imagefolder|insightface|grid [--size S]
//                                   [--image-format png|jpg] [--quality Q]
// Exit codes: 0 done, 1 runtime failure (writing), 2 bad command line or input (see README.md).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "adaptdiff/version.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "dist/agree.hpp"
#include "dist/mpi_environment.hpp"
#include "export/export.hpp"

namespace {
namespace ex = adaptdiff::exporter;


const char* kFooter = R"(Formats:
  imagefolder  DIR/<identity>/<k>.<ext>, names zero-padded to one width (string order = numeric order), and
               DIR/list.txt with "relative/path label" per image (label = identity index): for ImageFolder-style
               trainers.
  insightface  DIR/train.rec, DIR/train.idx, DIR/property ("classes,H,W"): MXNet indexed RecordIO as
               insightface's arcface_torch MXFaceDataset reads it; record 0 is the header (label = image key
               range), every image record carries its identity as label.
  grid         DIR/grids/<identity>.png: each identity's images in rows of 4; DIR/overview.png: the first image
               of each of the first 256 identities, 16 per row, rows labelled with their first identity
               (DIR/overview.txt lists them). Always PNG.
Only samples whose record is done (sample_checksum != 0) are exported. Ranks take contiguous identity ranges;
a rerun keeps every complete file and writes only what is missing (DIR/export.txt records the settings: a
rerun with other settings, or of another input, is refused).
Exit codes: 0 done; 1 runtime failure (writing, reading); 2 bad command line or input (missing file, not an
adaptdiff output, wrong shapes, no done sample, unwritable --out, bad --size/--quality, other settings in DIR).)";
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"adaptdiff-export: turn an adaptdiff-sample output (HDF5) into a training set on disk, on one or\n"
               "many MPI ranks."};
  ex::ExportOptions opts;
  std::string format, image_format = "png";
  app.add_option("input", opts.input, "the sampling output, e.g. out/quickstart.h5")->required()->type_name("DATA.h5");
  app.add_option("--out", opts.out, "output folder (created)")->required()->type_name("DIR");
  app.add_option("--format", format, "imagefolder | insightface | grid")
      ->required()
      ->check(CLI::IsMember({"imagefolder", "insightface", "grid"}));
  auto* size = app.add_option("--size", opts.size, "resize every image to S x S with an anti-aliased filter (e.g. 112)")
      ->type_name("S");
  app.add_option("--image-format", image_format, "png (default, lossless) | jpg")
      ->check(CLI::IsMember({"png", "jpg"}));
  auto* quality = app.add_option("--quality", opts.quality, "JPEG quality 1..100 (default 95; jpg only)")->type_name("Q");
  app.add_option("--progress-interval", opts.progress_interval, "seconds between progress lines (default 10)");
  app.footer(kFooter);
  app.set_version_flag("--version", std::string("adaptdiff-export ") + adaptdiff::kVersion);

  adaptdiff::dist::MpiEnvironment mpi(&argc, &argv);
  const adaptdiff::dist::Comm& world = mpi.world();
  const bool root = world.rank() == 0;
  try {
    app.parse(argc, argv);
    opts.format = ex::parse_format(format);
    opts.image_format = image_format == "jpg" ? adaptdiff::exporter::ImageFormat::kJpeg : ex::ImageFormat::kPng;
    if (size->count() > 0 && opts.size < 1) {
      throw adaptdiff::InputError("export: --size must be 1..8192 (pixels of the square output images), got " +
                                  std::to_string(opts.size));
    }
    if (quality->count() > 0 && opts.image_format != ex::ImageFormat::kJpeg) {
      throw adaptdiff::InputError("export: --quality applies to --image-format jpg only");
    }
  } catch (const CLI::ParseError& e) {
    if (root) return app.exit(e) == 0 ? 0 : static_cast<int>(adaptdiff::ExitCode::kUsage);
    return e.get_exit_code() == 0 ? 0 : static_cast<int>(adaptdiff::ExitCode::kUsage);
  } catch (const adaptdiff::InputError& e) {
    if (root) std::fprintf(stderr, "adaptdiff-export: %s\n", e.what());
    return static_cast<int>(adaptdiff::ExitCode::kUsage);
  }
  adaptdiff::log::configure(world.rank());
  try {
    const auto s = ex::run_export(world, opts);
    if (root) {
      adaptdiff::log::info("done: {} samples exported ({} not done, skipped); {} files written, {} kept from an "
                           "earlier run, {:.1f} MB, {:.1f} s -> {}",
                           s.samples_exported, s.samples_not_done, s.files_written, s.files_skipped,
                           static_cast<double>(s.bytes_written) / 1e6, s.seconds, opts.out);
    }
    return 0;
  } catch (const std::exception& e) {
    return adaptdiff::dist::exit_on_failure(world, e);
  }
}
