#include "job/plan.hpp"

#include <algorithm>
#include <numeric>

namespace adaptdiff::job {

std::vector<int64_t> Plan::batch_rows(int64_t b) const {
  const auto n = static_cast<int64_t>(pending.size());
  const int64_t first = std::min(b * batch_size, n), last = std::min(first + batch_size, n);
  return {pending.begin() + first, pending.begin() + last};
}

int64_t Plan::rows_per_batch() const {
  const int64_t unguided = static_cast<int64_t>(timesteps.size()) - guided_steps;
  return batch_size * (unguided + 2 * guided_steps);
}

int64_t Plan::rank_samples(int r) const {
  const Span s = rank_batches[static_cast<size_t>(r)];
  const auto n = static_cast<int64_t>(pending.size());
  return std::min(s.end * batch_size, n) - std::min(s.begin * batch_size, n);
}

Plan make_plan(int64_t identities, int64_t images_per_identity, std::vector<int64_t> pending, int64_t batch_size,
               std::vector<int64_t> timesteps, std::vector<double> weights, int world_size) {
  Plan p;
  p.identities = identities;
  p.images_per_identity = images_per_identity;
  p.samples = identities * images_per_identity;
  p.pending = std::move(pending);
  p.batch_size = batch_size;
  p.batches = (static_cast<int64_t>(p.pending.size()) + batch_size - 1) / batch_size;
  p.timesteps = std::move(timesteps);
  p.weights = std::move(weights);
  p.guided_steps = std::count_if(p.weights.begin(), p.weights.end(), [](double w) { return w != 0.0; });
  p.world_size = world_size;
  for (int r = 0; r < world_size; ++r) {
    p.rank_batches.push_back(dist::block_partition(p.batches, r, world_size));
    p.rank_identities.push_back(dist::block_partition(identities, r, world_size));
  }
  return p;
}

std::vector<int64_t> all_samples(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), int64_t{0});
  return v;
}

}  // namespace adaptdiff::job
