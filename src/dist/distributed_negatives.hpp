#pragma once
// Distributed negative-identity selection: every rank holds only a shard of the identity set (its
// queries) and a shard of the candidate pool; pool shards travel around a ring of ranks and each rank
// folds every shard into a negatives::SelectionAccumulator. The answer is bit-identical to the serial
// negatives::select_negatives for any rank count and any sharding, because (a) every similarity depends
// only on its two rows (negatives/similarity.hpp) and (b) far/close/median/random are defined by values
// and indices only, not by the order in which candidates are seen (negatives/selection.hpp).
//
// Communication per call: P-1 MPI_Sendrecv steps of one pool shard each (float32, m_r x D values), plus
// a few small allreduce/allgather calls for argument checks. Every rank takes part in every call, also
// with zero queries or zero pool rows, and every error found on one rank (bad input, a failure while
// folding a shard) is agreed on collectively so that all ranks throw instead of some waiting forever.
#include <torch/types.h>

#include <cstdint>

#include "dist/comm.hpp"
#include "dist/nccl_comm.hpp"
#include "negatives/selection.hpp"
#include "negatives/strategy.hpp"

namespace adaptdiff::dist {

/// Collective over `comm`. The negatives of this rank's queries, equal to
/// negatives::select_negatives(all queries, ..., whole pool, ...) restricted to this rank's rows.
/// my_queries: [n_r, D] float32 CPU, identities [q_begin, q_begin + n_r) of the identity set (n_r may be
///   0; an empty shard may have any width).
/// my_pool: [m_r, D] float32 CPU, pool rows [p_begin, p_begin + m_r) (m_r may be 0). The shards of all
///   ranks must tile [0, pool_total) without gap or overlap (any rank order). When pool_is_identity_set
///   the pool IS the identity set (shards may be cut differently from the query shards) and each query
///   must equal its pool row (checked while the shards pass by).
/// strategy, seed, pool_total, pool_is_identity_set: must be the same on every rank (checked).
/// block_rows: rows per similarity block (any value; results do not depend on it).
/// Memory per rank: two pool shards in flight (the largest m_r x D float32, plus its float64 normalised
///   copy), a block_rows^2 float32 block; median additionally n_r x pool_total float32 full rows.
/// Returns [n_r] index/similarity tensors (see negatives::Selection).
/// Throws InputError on every rank if any rank's input is invalid (message of the first offending
/// rank on that rank), CommError on an MPI failure.
negatives::Selection select_negatives_distributed(const Comm& comm, const torch::Tensor& my_queries,
                                                  int64_t q_begin, const torch::Tensor& my_pool, int64_t p_begin,
                                                  int64_t pool_total, bool pool_is_identity_set,
                                                  negatives::Strategy strategy, uint64_t seed,
                                                  int64_t block_rows = 1024);

/// Collective over `comm`. The pool rows named by `indices`, fetched from whichever rank holds them
/// (same ring as above), e.g. the negative conditions p- of this rank's queries.
/// indices: [k] int64 CPU, each in [0, pool_total) or -1 (gives an all-zero row).
/// my_pool, p_begin, pool_total: as for select_negatives_distributed.
/// Returns [k, D] float32 CPU (D = pool width; 0 if the pool is empty).
/// Throws InputError on every rank if any rank's input is invalid, CommError on an MPI failure.
torch::Tensor gather_pool_rows(const Comm& comm, const torch::Tensor& indices, const torch::Tensor& my_pool,
                               int64_t p_begin, int64_t pool_total);

/// This rank's part of a negative selection: its queries and its shard of the pool (as for
/// select_negatives_distributed).
struct SelectionShard {
  torch::Tensor queries;  ///< [n_r, D] float32 CPU: identities [query_begin, query_begin + n_r)
  int64_t query_begin = 0;
  torch::Tensor pool;     ///< [m_r, D] float32 CPU: pool rows [pool_begin, pool_begin + m_r)
  int64_t pool_begin = 0;
  int64_t pool_total = 0;
  bool pool_is_identity_set = false;
};

/// Collective over `comm` and `nccl`. Far or close negatives with the pool on the GPU: the shards are gathered
/// with one NCCL all-gather (instead of the MPI ring), normalised in float64 on the CPU as everywhere, and every
/// rank screens its queries with float32 products on its device and scores the shortlist exactly
/// (negatives::update_best_screened_on_device): the same indices and similarities as
/// select_negatives_distributed. The pool shards must lie in rank order (rank r holds the rows after rank r-1's),
/// as dist::block_partition cuts them. Memory per rank: the whole pool on the device (float32, twice) and on the
/// CPU (float32 and float64).
/// Throws InputError on every rank for another strategy or invalid input, CommError on an MPI/NCCL failure.
negatives::Selection select_negatives_on_device(const Comm& comm, const NcclComm& nccl, const SelectionShard& shard,
                                                negatives::Strategy strategy);

}  // namespace adaptdiff::dist
