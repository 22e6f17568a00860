#pragma once
// Test fixtures of adaptdiff-eval: a sampling output with chosen images and holes, and a small TorchScript
// face-recognition model whose embeddings have a closed form:
//   forward(x [B, 3, 112, 112]) = cat(mean of each channel, x[:, :, 0, 0], 2 * x[:, :, 111, 111])  -> [B, 9]
#include <torch/script.h>
#include <torch/torch.h>

#include <string>

#include "dist/comm.hpp"
#include "io/store.hpp"

namespace adaptdiff::test {

/// COLLECTIVE (OutputStore::create). Writes `path` with N identities x K images of size side x side, random
/// bytes from `seed`; rows whose index is a multiple of `hole_every` (> 0) are left not done (checksum 0).
/// Returns the images (uint8 [N*K, side, side, 3]) on every rank.
inline torch::Tensor make_store_fixture(const dist::Comm& comm, const std::string& path, int64_t n, int64_t k,
                                        int64_t side, int64_t hole_every, uint64_t seed) {
  io::StoreLayout l;
  l.identities = n;
  l.images_per_identity = k;
  l.height = l.width = side;
  l.context_dim = 4;
  torch::manual_seed(seed);
  const torch::Tensor images = torch::randint(0, 256, {n * k, side, side, 3}, torch::kInt64).to(torch::kUInt8);
  io::OutputStore store = io::OutputStore::create(comm, path, l, {});
  if (comm.rank() == 0) {
    const torch::Tensor rows = torch::arange(n * k, torch::kInt64);
    store.write_images(0, images);
    store.write_samples_labels(0, rows.div(k, "floor"), rows.remainder(k));
    store.write_compute_batch_sizes(0, torch::full({n * k}, 1, torch::kInt64));
    store.write_contexts(0, torch::ones({n, 4}));
    store.write_negatives(0, torch::full({n}, -1, torch::kInt64), torch::zeros({n}));
    torch::Tensor checksum = rows + 1;  // any non-zero value marks a done sample
    if (hole_every > 0) checksum.masked_fill_(rows.remainder(hole_every).eq(0), 0);
    store.write_checksums(0, checksum);
  }
  store.close();
  return images;
}

/// Saves the model of the top of this file to `path` (TorchScript compiled from source).
inline void make_fr_model(const std::string& path) {
  torch::jit::Module m("EvalTestFr");
  m.define(R"(
def forward(self, x):
    return torch.cat([x.mean([2, 3]), x[:, :, 0, 0], 2.0 * x[:, :, 111, 111]], 1)
)");
  m.save(path);
}

/// Saves a model whose output has the wrong shape ([B] instead of [B, D]) to `path`.
inline void make_bad_fr_model(const std::string& path) {
  torch::jit::Module m("EvalTestBadFr");
  m.define(R"(
def forward(self, x):
    return x.mean([1, 2, 3])
)");
  m.save(path);
}

/// The model's embeddings in closed form, in float64, from uint8 images [B, 112, 112, 3] (RGB unless bgr).
inline torch::Tensor fr_model_reference(const torch::Tensor& images, bool bgr) {
  torch::Tensor x = (images.to(torch::kFloat64) - 127.5) / 127.5;  // [B, H, W, C]
  if (bgr) x = x.flip({3});
  return torch::cat({x.mean({1, 2}), x.select(1, 0).select(1, 0), 2.0 * x.select(1, 111).select(1, 111)}, 1);
}

}  // namespace adaptdiff::test
