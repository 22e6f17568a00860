#pragma once
// adaptdiff-export: a sampling output (HDF5) -> a training set on disk, distributed over MPI ranks that take
// contiguous identity ranges, resumable (complete files are kept, a rerun writes only what is missing).
//   imagefolder  DIR/<identity>/<k>.<ext> + DIR/list.txt ("relative/path label" per line)
//   insightface  DIR/train.rec, DIR/train.idx, DIR/property (MXNet indexed RecordIO, as arcface_torch reads it)
//   grid         DIR/grids/<identity>.png (4-wide contact sheets) + DIR/overview.png (+ overview.txt legend)
// Only done samples (sample_checksum != 0) are exported.
#include <cstdint>
#include <string>

#include "dist/comm.hpp"
#include "export/image_ops.hpp"

namespace adaptdiff::exporter {

/// The layout written.
enum class Format { kImageFolder, kInsightFace, kGrid };

/// "imagefolder" | "insightface" | "grid" -> Format; InputError otherwise.
Format parse_format(const std::string& name);
const char* format_name(Format format);

/// What to export and how.
struct ExportOptions {
  std::string input;                           ///< the sampling output (.h5)
  std::string out;                             ///< output folder (created)
  Format format = Format::kImageFolder;
  int size = 0;                                ///< > 0: resize every image to size x size; 0: keep H x W
  ImageFormat image_format = ImageFormat::kPng;  ///< encoding of the images (grid: PNG only)
  int quality = 95;                            ///< JPEG quality 1..100
  double progress_interval = 10.0;             ///< seconds between progress lines
};

/// Totals over all ranks.
struct ExportSummary {
  int64_t files_written = 0;   ///< files (imagefolder, grid) or records (insightface) written by this run
  int64_t files_skipped = 0;   ///< already complete from an earlier run, kept
  int64_t bytes_written = 0;
  int64_t samples_exported = 0;  ///< done samples in the export
  int64_t samples_not_done = 0;  ///< samples whose record is 0: not exported
  double seconds = 0.0;
};

/// Throws InputError unless `options` are valid (size 0 or 1..8192, quality 1..100, grid only as PNG, input
/// and out given).
void validate(const ExportOptions& options);

/// Runs the export. COLLECTIVE over `comm`: every rank must call it; errors are agreed (dist::agree), so every
/// rank throws the same error. Bad input (options, input file, unwritable folder, a folder with another
/// export) throws InputError; write failures IoError. Rank 0 logs progress and the summary.
ExportSummary run_export(const dist::Comm& comm, const ExportOptions& options);

}  // namespace adaptdiff::exporter
