#include "sampler/noise.hpp"

#include <ATen/CPUGeneratorImpl.h>

namespace adaptdiff::sampler {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

uint64_t sample_seed(uint64_t seed, int64_t identity, int64_t image) {
  uint64_t h = splitmix64(seed);
  h = splitmix64(h ^ static_cast<uint64_t>(identity));
  h = splitmix64(h ^ static_cast<uint64_t>(image));
  // torch's CPU generator (mt19937) uses the low 64 bits; keep the full value.
  return h;
}

BatchNoise::BatchNoise(const std::vector<uint64_t>& seeds, std::vector<int64_t> sample_shape)
    : sample_shape_(std::move(sample_shape)) {
  generators_.reserve(seeds.size());
  for (uint64_t s : seeds) generators_.push_back(at::detail::createCPUGenerator(s));
}

torch::Tensor BatchNoise::next() {
  std::vector<int64_t> shape{rows()};
  shape.insert(shape.end(), sample_shape_.begin(), sample_shape_.end());
  torch::Tensor out = torch::empty(shape, torch::kFloat32);
  for (int64_t b = 0; b < rows(); ++b) {
    out[b].copy_(torch::randn(sample_shape_, generators_[static_cast<size_t>(b)], torch::kFloat32));
  }
  return out;
}

}  // namespace adaptdiff::sampler
