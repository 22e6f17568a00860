#pragma once
// The work plan of a sampling run: which global batches each rank samples, how many network evaluations
// that costs, and a memory estimate. Pure arithmetic (no MPI, no I/O) so it is unit-testable and the same
// on every rank.
//
// Work decomposition: the N*K samples (identity i, image k) are numbered s = i*K + k and cut into global
// batches of batch_size consecutive samples; the last batch may be short and is padded to batch_size so
// every forward has the same shape. Batches are split into contiguous blocks over ranks. Batch
// composition therefore depends only on (N, K, batch_size), never on the number of ranks.
#include <cstdint>
#include <string>
#include <vector>

#include "config/run_config.hpp"
#include "dist/partition.hpp"

namespace adaptdiff::job {

/// [begin, end) half-open range of indices.
using Span = dist::Range;

struct Plan {
  int64_t identities = 0;        ///< N
  int64_t images_per_identity = 0;  ///< K
  int64_t samples = 0;           ///< N*K
  int64_t batch_size = 0;        ///< B
  int64_t batches = 0;           ///< ceil(N*K / B)
  int64_t T = 0;                 ///< diffusion steps of the schedule
  bool ddim = false;
  std::vector<int64_t> timesteps;      ///< visited timesteps, execution order
  std::vector<double> weights;         ///< guidance weight at each visited timestep
  int64_t guided_steps = 0;            ///< visited steps with w_i > 0 (forward of 2B rows)
  int world_size = 1;
  std::vector<Span> rank_batches;      ///< per rank: global batch indices
  std::vector<Span> rank_identities;   ///< per rank: identity shard for negative selection

  /// Samples [first, last) of global batch b (last - first < B only for the final batch).
  Span batch_samples(int64_t b) const;
  /// Forward passes and evaluated rows for one batch (padding rows included).
  int64_t forwards_per_batch() const { return static_cast<int64_t>(timesteps.size()); }
  int64_t rows_per_batch() const;
};

/// Builds the plan. timesteps/weights come from the sampler and guidance schedule.
Plan make_plan(int64_t identities, int64_t images_per_identity, int64_t batch_size, int64_t T, bool ddim,
               std::vector<int64_t> timesteps, std::vector<double> weights, int world_size);

}  // namespace adaptdiff::job
