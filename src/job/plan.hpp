#pragma once
// The work plan of a sampling run: which samples each rank produces, how many network evaluations that
// costs. Pure arithmetic (no MPI, no I/O), identical on every rank.
//
// Work decomposition: the N*K samples (identity i, image k) are numbered s = i*K + k. The samples still
// to do (all of them in a fresh run, the missing ones on resume) are listed in increasing order and cut
// into global batches of batch_size; the last batch may be short and is padded to batch_size so every
// forward has the same shape. Batches are split into contiguous blocks over ranks, so batch composition
// depends only on (pending samples, batch_size), never on the number of ranks.
#include <cstdint>
#include <vector>

#include "dist/partition.hpp"

namespace adaptdiff::job {

/// [begin, end) half-open range of indices.
using Span = dist::Range;

struct Plan {
  int64_t identities = 0;           ///< N
  int64_t images_per_identity = 0;  ///< K
  int64_t samples = 0;              ///< N*K
  std::vector<int64_t> pending;     ///< sample numbers still to do, increasing
  int64_t batch_size = 0;           ///< B
  int64_t batches = 0;              ///< ceil(pending / B)
  std::vector<int64_t> timesteps;   ///< visited timesteps, execution order
  std::vector<double> weights;      ///< guidance weight at each visited timestep
  int64_t guided_steps = 0;         ///< visited steps with w_i > 0 (forward of 2B rows)
  int world_size = 1;
  std::vector<Span> rank_batches;     ///< per rank: global batch indices
  std::vector<Span> rank_identities;  ///< per rank: identity shard for negative selection

  /// Sample numbers of global batch b (fewer than B only for the final batch).
  std::vector<int64_t> batch_rows(int64_t b) const;
  /// Rounds of the sampling loop: the largest number of batches any rank has (rank 0's).
  int64_t rounds() const { return rank_batches.empty() ? 0 : rank_batches.front().size(); }
  /// Network rows evaluated per batch (padding included).
  int64_t rows_per_batch() const;
  /// Samples in rank r's batches.
  int64_t rank_samples(int r) const;
};

/// Builds the plan. `pending`: increasing sample numbers in [0, N*K) still to do.
/// timesteps/weights come from the sampler and the guidance schedule.
Plan make_plan(int64_t identities, int64_t images_per_identity, std::vector<int64_t> pending, int64_t batch_size,
               std::vector<int64_t> timesteps, std::vector<double> weights, int world_size);

/// All sample numbers 0..n-1 (the pending list of a fresh run).
std::vector<int64_t> all_samples(int64_t n);

}  // namespace adaptdiff::job
