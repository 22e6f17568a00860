#pragma once
// The run's inputs: the identity set and the negative pool (validated before any expensive work), this
// rank's shard of them, and the negatives selected over all ranks.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "config/run_config.hpp"
#include "dist/partition.hpp"
#include "io/identities.hpp"
#include "negatives/selection.hpp"
#include "negatives/strategy.hpp"

namespace adaptdiff::dist {
class Comm;
}

namespace adaptdiff::job {

/// Where the identity contexts and the negative candidates come from.
struct Sources {
  io::ContextSource identities;
  io::ContextSource pool;            ///< meaningful only when !pool_is_identity_set
  int64_t pool_total = 0;            ///< candidate rows (N when the pool is the identity set)
  bool pool_is_identity_set = true;  ///< negatives.pool = ""
  negatives::Strategy strategy = negatives::Strategy::kFar;
};

/// Parses and checks the sources of `cfg`: files exist and are readable, enough rows, a strategy that needs
/// two identities gets them, and the data itself (dtype, width, every value finite, no zero row, no truncated
/// data): this rank reads and validates its block (dist::block_partition) of the identity rows and of the pool
/// rows, one chunk of 8192 rows at a time; together the ranks check every row the run uses, so the lowest
/// failing rank names the first bad global row. Throws ConfigError (exit code 2), also for unreadable or bad
/// files. Serial (no communication); call it on every rank.
Sources validate_sources(const config::RunConfig& cfg, int rank = 0, int world_size = 1);

/// This rank's identities with their contexts, its pool shard, and the negatives of every identity.
struct RankNegatives {
  dist::Range my_ids;                 ///< identity shard of this rank
  torch::Tensor my_contexts;          ///< float32 [my_ids, D]
  dist::Range my_pool_span;           ///< pool rows of this rank (my_ids for the identity set)
  torch::Tensor my_pool;              ///< float32 [my_pool_span, D]; undefined for the identity set
  negatives::Selection selection;     ///< negatives of my_ids
  std::vector<int64_t> all_index;     ///< [N] negative_index of every identity (-1 for zero/none)
};

/// Reads this rank's shard and selects the negatives across ranks (COLLECTIVE; errors agreed on every rank).
/// When every rank has a GPU of its own (a build with NCCL), far and close gather the pool with NCCL and screen
/// on the GPU (dist::select_negatives_on_device; same result), else the MPI ring on the CPU.
RankNegatives select_negatives(const dist::Comm& comm, const config::RunConfig& cfg, const Sources& sources,
                               dist::Range my_ids, torch::Device device);

/// Contexts of the identities a rank's batches touch.
struct TouchedContexts {
  torch::Tensor pos;  ///< float32 [touched, D]: p+
  torch::Tensor neg;  ///< float32 [touched, D]: p-; undefined for strategy none
};

/// The contexts of identities `touched` (COLLECTIVE: p- rows come from whichever rank holds those pool rows).
TouchedContexts touched_contexts(const dist::Comm& comm, const config::RunConfig& cfg, const Sources& sources,
                                 const RankNegatives& negs, dist::Range touched);

}  // namespace adaptdiff::job
