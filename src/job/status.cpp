#include "job/status.hpp"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "core/error.hpp"
#include "io/store_reader.hpp"
#include "job/record.hpp"

namespace adaptdiff::job {

int print_status(const std::string& path, std::ostream& out, int ranges) {
  const io::StoreReader reader(path);
  const io::StoreLayout& l = reader.layout();
  const torch::Tensor sums = reader.read_int64(io::store_dataset::kSampleChecksum);
  const int64_t* sum = sums.data_ptr<int64_t>();
  const int64_t N = l.identities, K = l.images_per_identity, total = N * K;
  int64_t done = 0, complete_ids = 0;
  std::vector<int64_t> per_identity(static_cast<size_t>(N), 0);
  for (int64_t s = 0; s < total; ++s) {
    if (is_done(sum[s])) ++done, ++per_identity[static_cast<size_t>(s / K)];
  }
  for (int64_t c : per_identity) complete_ids += (c == K);
  const auto attrs = reader.string_attributes();
  const auto version = attrs.count("adaptdiff_version") ? attrs.at("adaptdiff_version") : std::string("?");
  out << fmt::format("{}\n  run: {} identities x {} images of {}x{}, written by adaptdiff {}\n", path, N, K, l.height,
                     l.width, version);
  out << fmt::format("  progress: {}/{} samples done ({:.1f}%), {}/{} identities complete\n", done, total,
                     total > 0 ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100.0, complete_ids, N);
  const int64_t step = std::max<int64_t>(1, (N + ranges - 1) / ranges);
  for (int64_t a = 0; a < N; a += step) {
    const int64_t b = std::min(N, a + step);
    int64_t d = 0;
    for (int64_t i = a; i < b; ++i) d += per_identity[static_cast<size_t>(i)];
    out << fmt::format("  identities [{}, {}): {}/{} samples\n", a, b, d, (b - a) * K);
  }
  if (reader.has_dataset(io::store_dataset::kComputeBatchSize) && attrs.count("compute_batch_size") != 0) {
    // Samples computed under --rebatch: in another batch grid than the file's, so not byte-identical to an
    // uninterrupted run.
    const int64_t file_batch = std::stoll(attrs.at("compute_batch_size"));
    const torch::Tensor sizes = reader.read_int64(io::store_dataset::kComputeBatchSize);
    const int64_t* size = sizes.data_ptr<int64_t>();
    std::map<int64_t, int64_t> other;
    for (int64_t s = 0; s < total; ++s) {
      if (is_done(sum[s]) && size[s] != file_batch) ++other[size[s]];
    }
    out << fmt::format("  compute batch size: {}", file_batch);
    for (const auto& [b, count] : other) out << fmt::format("; {} sample(s) in batches of {} (--rebatch)", count, b);
    out << (other.empty() ? " (every done sample)\n" : ": those may differ from an uninterrupted run in their last bits\n");
  }
  const bool complete = done == total;
  out << (complete ? "  status: complete\n" : "  status: incomplete; run the same command again to resume\n");
  return static_cast<int>(complete ? ExitCode::kSuccess : ExitCode::kCheckpointed);
}

}  // namespace adaptdiff::job
