#pragma once
// Reproducible per-sample noise: every random draw of sample (identity i, image k) comes from its own
// CPU generator seeded from (run seed, i, k), so the noise never depends on the number of ranks, the batch
// size or the order of work.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace adaptdiff::sampler {

/// splitmix64 finaliser (Steele, Lea & Flood 2014): a bijective 64-bit mixer.
uint64_t splitmix64(uint64_t x);

/// Seed of sample (identity, image) under run seed `seed`: nested splitmix64 over the three values.
uint64_t sample_seed(uint64_t seed, int64_t identity, int64_t image);

/// Noise for one batch: one generator per row, advanced in sampling order. Draw order per sample is
/// x_T first, then one draw per noisy step, exactly as upstream draws for a batch of one.
class BatchNoise {
 public:
  /// seeds: one per row; shape of one draw per row: {C, H, W}.
  BatchNoise(const std::vector<uint64_t>& seeds, std::vector<int64_t> sample_shape);
  /// Next draw for every row: [B, C, H, W] float32 on the CPU (standard normal).
  torch::Tensor next();
  int64_t rows() const { return static_cast<int64_t>(generators_.size()); }

 private:
  std::vector<at::Generator> generators_;
  std::vector<int64_t> sample_shape_;
};

}  // namespace adaptdiff::sampler
