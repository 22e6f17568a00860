#pragma once
// The exporter's view of a sampling output (README "Output file"): layout, which samples are done, the
// run's fingerprint, and reading images as exporter::Image. Serial (io::StoreReader); every rank opens its own.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "export/image_ops.hpp"
#include "io/store_reader.hpp"

namespace adaptdiff::exporter {

/// An opened, checked output file.
struct Source {
  std::string path;
  io::StoreLayout layout;             ///< N identities, K images per identity, H x W images
  std::vector<uint8_t> done;          ///< [N*K] 1 where sample_checksum != 0
  std::vector<int64_t> done_before;   ///< [N+1] done samples of identities < i (done_before[N] = all done)
  std::string fingerprint;            ///< SHA-256 of the file's fingerprint.* attributes (which run made it)

  int64_t identities() const { return layout.identities; }
  int64_t per_identity() const { return layout.images_per_identity; }
  int64_t rows() const { return layout.image_rows(); }
  int64_t done_total() const { return done_before.back(); }
  int64_t done_of(int64_t identity) const { return done_before[identity + 1] - done_before[identity]; }
};

/// Opens `path` and checks that it is an adaptdiff output in row order s = i*K + k (identity and
/// sample_index of every done row), with at least one done sample. Throws InputError for anything wrong with
/// the file (missing, unreadable, not an adaptdiff output, wrong shapes, labels out of order, nothing done),
/// naming the file and the dataset/row.
/// `reader` receives the open file (for read_rows).
Source open_source(const std::string& path, std::optional<io::StoreReader>& reader);

/// Images of rows [row_begin, row_end) of `reader`. Throws IoError on a read failure.
std::vector<Image> read_rows(const io::StoreReader& reader, int64_t row_begin, int64_t row_end);

}  // namespace adaptdiff::exporter
