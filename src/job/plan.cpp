#include "job/plan.hpp"

#include <algorithm>
#include <numeric>

namespace adaptdiff::job {

namespace {
/// Pending samples in [first, last) as iterators into the increasing `pending`.
std::pair<std::vector<int64_t>::const_iterator, std::vector<int64_t>::const_iterator> pending_in(
    const std::vector<int64_t>& pending, int64_t first, int64_t last) {
  return {std::lower_bound(pending.begin(), pending.end(), first),
          std::lower_bound(pending.begin(), pending.end(), last)};
}
}  // namespace

std::vector<int64_t> Plan::batch_rows(int64_t j) const {
  const int64_t first = grid_batches[static_cast<size_t>(j)] * batch_size;
  const int64_t last = std::min(first + batch_size, samples);
  std::vector<int64_t> rows(static_cast<size_t>(last - first));
  std::iota(rows.begin(), rows.end(), first);
  return rows;
}

std::vector<int64_t> Plan::pending_rows(int64_t j) const {
  const int64_t first = grid_batches[static_cast<size_t>(j)] * batch_size;
  const auto [a, b] = pending_in(pending, first, first + batch_size);
  return {a, b};
}

int64_t Plan::rows_per_batch() const {
  const int64_t unguided = static_cast<int64_t>(timesteps.size()) - guided_steps;
  return batch_size * (unguided + 2 * guided_steps);
}

int64_t Plan::rank_samples(int r) const {
  const Span s = rank_batches[static_cast<size_t>(r)];
  if (s.size() == 0) return 0;
  const auto [a, b] = pending_in(pending, grid_batches[static_cast<size_t>(s.begin)] * batch_size,
                                 (grid_batches[static_cast<size_t>(s.end - 1)] + 1) * batch_size);
  return b - a;
}

Plan make_plan(int64_t identities, int64_t images_per_identity, std::vector<int64_t> pending, int64_t batch_size,
               std::vector<int64_t> timesteps, std::vector<double> weights, int world_size) {
  Plan p;
  p.identities = identities;
  p.images_per_identity = images_per_identity;
  p.samples = identities * images_per_identity;
  p.pending = std::move(pending);
  p.batch_size = batch_size;
  for (const int64_t s : p.pending) {
    const int64_t g = s / batch_size;
    if (p.grid_batches.empty() || p.grid_batches.back() != g) p.grid_batches.push_back(g);
  }
  p.batches = static_cast<int64_t>(p.grid_batches.size());
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
