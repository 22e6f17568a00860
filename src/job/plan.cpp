#include "job/plan.hpp"

#include <algorithm>

namespace adaptdiff::job {

Span Plan::batch_samples(int64_t b) const {
  const int64_t first = b * batch_size;
  return {first, std::min(first + batch_size, samples)};
}

int64_t Plan::rows_per_batch() const {
  const int64_t unguided = static_cast<int64_t>(timesteps.size()) - guided_steps;
  return batch_size * (unguided + 2 * guided_steps);
}

Plan make_plan(int64_t identities, int64_t images_per_identity, int64_t batch_size, int64_t T, bool ddim,
               std::vector<int64_t> timesteps, std::vector<double> weights, int world_size) {
  Plan p;
  p.identities = identities;
  p.images_per_identity = images_per_identity;
  p.samples = identities * images_per_identity;
  p.batch_size = batch_size;
  p.batches = (p.samples + batch_size - 1) / batch_size;
  p.T = T;
  p.ddim = ddim;
  p.timesteps = std::move(timesteps);
  p.weights = std::move(weights);
  for (double w : p.weights) p.guided_steps += (w != 0.0);
  p.world_size = world_size;
  for (int r = 0; r < world_size; ++r) {
    p.rank_batches.push_back(dist::block_partition(p.batches, r, world_size));
    p.rank_identities.push_back(dist::block_partition(identities, r, world_size));
  }
  return p;
}

}  // namespace adaptdiff::job
