#pragma once
// The progress record: dataset sample_checksum (int64 [N*K]) of the output, one checksum per sample written
// only after the sample's data, 0 while the sample is not done. Verified on resume, so that a torn or
// missing write is redone.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace adaptdiff::io {
class OutputStore;
}
namespace adaptdiff::dist {
class Comm;
}

namespace adaptdiff::job {

/// True when a record entry marks its sample done (0 = not done).
inline bool is_done(int64_t checksum) { return checksum != 0; }

/// The record of a sample: 63 bits of SHA-256 over (SHA-256 of its image bytes (uint8 [H, W, 3]), its
/// identity and sample_index, the compute batch size it was made with, and the SHA-256 of its latent bytes
/// (float32 [C, h, w]) when latents are stored, else `latent` undefined); never 0.
int64_t sample_checksum(const torch::Tensor& image, int64_t identity, int64_t sample_index, int64_t batch_size,
                        const torch::Tensor& latent = torch::Tensor());

/// Calls fn(first, count) for each maximal run of consecutive values in the increasing `rows`, split so
/// that no run is longer than `max_run`.
template <typename Fn>
void for_each_run(const std::vector<int64_t>& rows, int64_t max_run, Fn&& fn) {
  size_t a = 0;
  while (a < rows.size()) {
    size_t b = a + 1;
    while (b < rows.size() && rows[b] == rows[b - 1] + 1 && static_cast<int64_t>(b - a) < max_run) ++b;
    fn(a, static_cast<int64_t>(b - a));
    a = b;
  }
}

/// Samples still to do (COLLECTIVE): those never marked done, plus done ones whose stored data no longer
/// match their checksum. Only done samples without a durable mark (io::store_dataset::kSampleDurable: their
/// records came after the last completed checkpoint, or the file has no marks) are read back and verified,
/// in parallel, each rank a block of them; rank 0 logs how many and warns about failures. `samples` = N*K;
/// `with_latents`: the latents are part of the record. Increasing.
std::vector<int64_t> pending_samples(const dist::Comm& comm, io::OutputStore& store, int64_t samples,
                                     bool with_latents);

/// Marks `recorded` (this rank's samples whose records were written before a flush that has completed) durable
/// in the store and empties the list. Not collective (independent writes); the marks reach the disk with the
/// next flush.
void mark_durable(io::OutputStore& store, std::vector<int64_t>& recorded);

}  // namespace adaptdiff::job
