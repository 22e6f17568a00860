#pragma once
// Internal to src/export: what the three formats share (the run's context, counters, per-image preparation)
// and their entry points. Each format's file holds its layout; export.cpp composes them.
#include <cstdint>
#include <string>
#include <vector>

#include "dist/comm.hpp"
#include "dist/partition.hpp"
#include "export/export.hpp"
#include "export/source.hpp"
#include "core/progress.hpp"

namespace adaptdiff::exporter {

/// This rank's counters (summed over ranks at the end).
struct Counters {
  int64_t written = 0, skipped = 0, bytes = 0;
};

/// Everything a format needs. `ids` is this rank's identity range.
struct Context {
  const ExportOptions& options;
  const Source& source;
  const io::StoreReader& reader;
  dist::Range ids;
  Counters& counters;
  Progress& progress;

  int out_width() const { return options.size > 0 ? options.size : static_cast<int>(source.layout.width); }
  int out_height() const { return options.size > 0 ? options.size : static_cast<int>(source.layout.height); }
  /// `raw` resized to the output size (a copy when no --size).
  Image prepare(const Image& raw) const;
  /// Writes `bytes` complete-or-absent to `path` and counts it.
  void write(const std::string& path, const std::vector<uint8_t>& bytes) const;
};

/// The formats. COLLECTIVE over `comm` (they agree on errors themselves).
void export_imagefolder(const dist::Comm& comm, Context& ctx);
void export_insightface(const dist::Comm& comm, Context& ctx);
void export_grid(const dist::Comm& comm, Context& ctx);

/// "DIR/<padded identity>/<padded k>.<ext>" relative to DIR (imagefolder).
std::string imagefolder_path(const Source& source, int64_t identity, int64_t k, ImageFormat format);

}  // namespace adaptdiff::exporter
