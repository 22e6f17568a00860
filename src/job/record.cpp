#include "job/record.hpp"

#include <algorithm>
#include <limits>
#include <string>

#include "core/log.hpp"
#include "dist/agree.hpp"
#include "dist/comm.hpp"
#include "dist/partition.hpp"
#include "io/sha256.hpp"
#include "io/store.hpp"

namespace adaptdiff::job {

int64_t sample_checksum(const torch::Tensor& image, int64_t identity, int64_t sample_index, int64_t batch_size,
                        const torch::Tensor& latent) {
  auto digest = [](const torch::Tensor& t) {
    const torch::Tensor c = t.contiguous();
    return io::sha256_bytes(std::string_view(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size()));
  };
  std::string record = digest(image);
  record.append(reinterpret_cast<const char*>(&identity), sizeof identity);
  record.append(reinterpret_cast<const char*>(&sample_index), sizeof sample_index);
  record.append(reinterpret_cast<const char*>(&batch_size), sizeof batch_size);
  if (latent.defined()) record += digest(latent);
  const uint64_t h = std::stoull(io::sha256_bytes(record).substr(0, 16), nullptr, 16) & 0x7FFFFFFFFFFFFFFFULL;
  return h == 0 ? 1 : static_cast<int64_t>(h);
}

std::vector<int64_t> pending_samples(const dist::Comm& comm, io::OutputStore& store, int64_t samples,
                                     bool with_latents) {
  torch::Tensor sums, durable;
  dist::agree(comm, "record", [&] {
    sums = store.read_rows(io::store_dataset::kSampleChecksum, 0, samples);
    if (store.has_dataset(io::store_dataset::kSampleDurable)) {
      durable = store.read_rows(io::store_dataset::kSampleDurable, 0, samples);
    }
  });
  const int64_t* sum = sums.data_ptr<int64_t>();
  const uint8_t* mark = durable.defined() ? durable.data_ptr<uint8_t>() : nullptr;
  std::vector<int64_t> to_verify;  // done samples without a durable mark
  int64_t done_total = 0;
  for (int64_t s = 0; s < samples; ++s) {
    if (!is_done(sum[s])) continue;
    ++done_total;
    if (mark == nullptr || mark[s] == 0) to_verify.push_back(s);
  }
  const dist::Range part = dist::block_partition(static_cast<int64_t>(to_verify.size()), comm.rank(), comm.size());
  const std::vector<int64_t> mine(to_verify.begin() + part.begin, to_verify.begin() + part.end);
  std::vector<int64_t> bad(static_cast<size_t>(samples), 0);
  dist::agree(comm, "verify", [&] {
    for_each_run(mine, 256, [&](size_t a, int64_t n) {
      const int64_t first = mine[a];
      const torch::Tensor images = store.read_rows(io::store_dataset::kImages, first, n);
      const torch::Tensor ids = store.read_rows(io::store_dataset::kIdentity, first, n);
      const torch::Tensor ks = store.read_rows(io::store_dataset::kSampleIndex, first, n);
      const torch::Tensor bs = store.read_rows(io::store_dataset::kComputeBatchSize, first, n);
      const torch::Tensor latents =
          with_latents ? store.read_rows(io::store_dataset::kLatents, first, n) : torch::Tensor();
      const int64_t* id = ids.data_ptr<int64_t>();
      const int64_t* k = ks.data_ptr<int64_t>();
      const int64_t* b = bs.data_ptr<int64_t>();
      for (int64_t j = 0; j < n; ++j) {
        const torch::Tensor latent = with_latents ? latents[j] : torch::Tensor();
        if (sample_checksum(images[j], id[j], k[j], b[j], latent) != sum[first + j]) bad[first + j] = 1;
      }
    });
  });
  bad = comm.allreduce(bad, dist::ReduceOp::kMax);
  std::vector<int64_t> pending;
  int64_t redo = 0;
  for (int64_t s = 0; s < samples; ++s) {
    if (!is_done(sum[s]) || bad[s] != 0) pending.push_back(s);
    redo += bad[s];
  }
  if (comm.rank() == 0 && done_total > 0) {
    log::info("resume: verified {} of {} done sample(s) against their checksums{}", to_verify.size(), done_total,
              static_cast<int64_t>(to_verify.size()) < done_total
                  ? " (the others were on disk at a completed checkpoint)"
                  : "");
  }
  if (redo > 0 && comm.rank() == 0) {
    log::warn("resume: {} sample(s) marked done failed their checksum and will be redone", redo);
  }
  return pending;
}

void mark_durable(io::OutputStore& store, std::vector<int64_t>& recorded) {
  std::sort(recorded.begin(), recorded.end());
  for_each_run(recorded, std::numeric_limits<int64_t>::max(),
               [&](size_t a, int64_t n) { store.mark_durable(recorded[a], n); });
  recorded.clear();
}

}  // namespace adaptdiff::job
