#include "export/export.hpp"

#include <chrono>
#include <filesystem>
#include <optional>

#include "core/error.hpp"
#include "core/log.hpp"
#include "dist/agree.hpp"
#include "export/files.hpp"
#include "export/formats.hpp"

namespace adaptdiff::exporter {

namespace fs = std::filesystem;

Format parse_format(const std::string& name) {
  if (name == "imagefolder") return Format::kImageFolder;
  if (name == "insightface") return Format::kInsightFace;
  if (name == "grid") return Format::kGrid;
  throw InputError("export: unknown --format '" + name + "'; expected imagefolder, insightface or grid");
}

const char* format_name(Format format) {
  switch (format) {
    case Format::kImageFolder: return "imagefolder";
    case Format::kInsightFace: return "insightface";
    default: return "grid";
  }
}

void validate(const ExportOptions& o) {
  if (o.input.empty()) throw InputError("export: no input file given");
  if (o.out.empty()) throw InputError("export: no output folder given (--out DIR)");
  if (o.size < 0 || o.size > 8192) {
    throw InputError("export: --size must be 1..8192 (pixels of the square output images), got " + std::to_string(o.size));
  }
  if (o.quality < 1 || o.quality > 100) {
    throw InputError("export: --quality must be 1..100 (JPEG quality), got " + std::to_string(o.quality));
  }
  if (o.format == Format::kGrid && o.image_format != ImageFormat::kPng) {
    throw InputError("export: --format grid writes PNG sheets only; drop --image-format jpg");
  }
}

Image Context::prepare(const Image& raw) const {
  return options.size > 0 ? resize(raw, options.size, options.size) : raw;
}

void Context::write(const std::string& path, const std::vector<uint8_t>& bytes) const {
  write_file_atomic(path, bytes.data(), bytes.size());
  ++counters.written;
  counters.bytes += static_cast<int64_t>(bytes.size());
}

namespace {
Manifest manifest_of(const ExportOptions& o, const Source& s) {
  return {{"format", format_name(o.format)},
          {"size", o.size > 0 ? std::to_string(o.size) : "source"},
          {"image_format", extension(o.image_format)},
          {"quality", o.image_format == ImageFormat::kJpeg ? std::to_string(o.quality) : "-"},
          {"source_fingerprint", s.fingerprint},
          {"source_layout", std::to_string(s.identities()) + "x" + std::to_string(s.per_identity()) + "x" +
                                std::to_string(s.layout.height) + "x" + std::to_string(s.layout.width)}};
}

void log_start(const dist::Comm& comm, const ExportOptions& o, const Source& s) {
  if (comm.rank() != 0) return;
  log::info("export: {} -> {} ({}), {} of {} samples done, {} identities on {} rank(s){}", o.input, o.out,
            format_name(o.format), s.done_total(), s.rows(), s.identities(), comm.size(),
            o.size > 0 ? ", resized to " + std::to_string(o.size) + "x" + std::to_string(o.size) : "");
  if (s.done_total() < s.rows()) {
    log::warn("export: {} of {} samples are not done (sample_checksum = 0) and are skipped", s.rows() - s.done_total(),
              s.rows());
  }
}
}  // namespace

ExportSummary run_export(const dist::Comm& comm, const ExportOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  Source source;
  std::optional<io::StoreReader> reader;
  dist::agree(comm, "export: open input", [&] {
    validate(options);
    source = open_source(options.input, reader);
  });
  dist::agree(comm, "export: output folder", [&] {
    ensure_writable_folder(options.out);
    if (comm.rank() == 0) check_or_write_manifest(options.out, manifest_of(options, source));
  });
  log_start(comm, options, source);

  const dist::Range ids = dist::block_partition(source.identities(), comm.rank(), comm.size());
  const int64_t mine = source.done_before[static_cast<size_t>(ids.end)] - source.done_before[static_cast<size_t>(ids.begin)];
  Progress progress(comm.rank() == 0, source.done_total(), 0, mine, options.progress_interval);
  Counters counters;
  Context ctx{options, source, *reader, ids, counters, progress};
  switch (options.format) {
    case Format::kImageFolder: export_imagefolder(comm, ctx); break;
    case Format::kInsightFace: export_insightface(comm, ctx); break;
    case Format::kGrid: export_grid(comm, ctx); break;
  }
  const auto totals = comm.allreduce(std::vector<int64_t>{counters.written, counters.skipped, counters.bytes},
                                     dist::ReduceOp::kSum);
  ExportSummary summary;
  summary.files_written = totals[0];
  summary.files_skipped = totals[1];
  summary.bytes_written = totals[2];
  summary.samples_exported = source.done_total();
  summary.samples_not_done = source.rows() - source.done_total();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace adaptdiff::exporter
