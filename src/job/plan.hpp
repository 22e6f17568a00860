#pragma once
// The work plan of a sampling run: which samples each rank produces, how many network evaluations that
// costs. Pure arithmetic (no MPI, no I/O), identical on every rank.
//
// Work decomposition: the N*K samples (identity i, image k) are numbered s = i*K + k and cut into a fixed
// grid of global batches of the compute batch size B: batch g holds samples [g*B, min((g+1)*B, N*K)); a short
// last batch is padded to B rows with its last sample, so every forward has the same shape. A run computes
// the grid batches that hold at least one pending sample (all of them in a fresh run, those with a missing or
// failing sample on resume), each one whole, and writes only its pending samples. The batches to compute are
// split into contiguous blocks over ranks. So the composition of the batch a sample is computed in depends
// only on (N*K, B): never on the number of ranks, on which samples an earlier run finished, or on the order of
// work -- which is what makes a resumed file byte-identical to an uninterrupted one (CPU kernels may round a
// row differently when the rest of its batch changes).
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
  int64_t batch_size = 0;           ///< B, the compute batch size of the grid
  std::vector<int64_t> grid_batches;  ///< grid batch numbers g that hold a pending sample, increasing
  int64_t batches = 0;              ///< grid_batches.size(): batches to compute
  std::vector<int64_t> timesteps;   ///< visited timesteps, execution order
  std::vector<double> weights;      ///< guidance weight at each visited timestep
  int64_t guided_steps = 0;         ///< visited steps with w_i > 0 (forward of 2B rows)
  int world_size = 1;
  std::vector<Span> rank_batches;     ///< per rank: positions in grid_batches
  std::vector<Span> rank_identities;  ///< per rank: identity shard for negative selection

  /// Sample numbers that batch j (a position in grid_batches) computes: its whole grid batch, increasing
  /// and consecutive (fewer than B only for the grid's last batch).
  std::vector<int64_t> batch_rows(int64_t j) const;
  /// The pending samples of batch j, the ones it writes: a non-empty subset of batch_rows(j), increasing.
  std::vector<int64_t> pending_rows(int64_t j) const;
  /// Rounds of the sampling loop: the largest number of batches any rank has (rank 0's).
  int64_t rounds() const { return rank_batches.empty() ? 0 : rank_batches.front().size(); }
  /// Network rows evaluated per batch (padding included).
  int64_t rows_per_batch() const;
  /// Pending samples in rank r's batches (what rank r writes).
  int64_t rank_samples(int r) const;
};

/// Builds the plan. `pending`: increasing sample numbers in [0, N*K) still to do; `batch_size` >= 1 is the
/// grid's compute batch size. timesteps/weights come from the sampler and the guidance schedule.
Plan make_plan(int64_t identities, int64_t images_per_identity, std::vector<int64_t> pending, int64_t batch_size,
               std::vector<int64_t> timesteps, std::vector<double> weights, int world_size);

/// All sample numbers 0..n-1 (the pending list of a fresh run).
std::vector<int64_t> all_samples(int64_t n);

}  // namespace adaptdiff::job
