#pragma once
// Selection of the negative identity p- of every identity p+ (NegFaceDiff guidance), built from blocks.
//
// Vocabulary. The *identity set* holds the N identities being sampled (global rows 0..N-1). The *pool*
// holds the candidates a negative is drawn from (global rows 0..n-1): either the identity set itself
// (pool_is_identity_set = true; then identity i never picks itself, so it has n-1 candidates) or a
// separate set (nothing is excluded, n candidates). A *query* is an identity whose negative is wanted.
//
// Definitions (sim is the float32 cosine similarity of similarity.hpp; all indices are global):
//   far    : argmin_j sim(i, j) over the candidates j; ties -> lowest j.
//   close  : argmax_j sim(i, j) over the candidates j; ties -> lowest j.
//   median : upstream's definition, `argsort(sim)[n // 2]` over ALL n pool rows: sort them by
//            (sim ascending, j ascending) — for the identity set including i itself (sim 1, last) —
//            and pick position floor(n/2). For n = 2 in the identity set that is i itself.
//   random : h = splitmix64(seed, i + 1); r = floor(h * c / 2^64); for the identity set
//            j = r + (r >= i ? 1 : 0) (skips i), for a separate pool j = r. Depends only on
//            (seed, i, n, pool kind), never on ranks or blocking.
//   previous: upstream's "rand" negative: j = (i - 1) mod n (identity 0 takes the last row).
//   zero   : no pool row (index -1); the sampler uses the all-zero 512-vector as p-.
//   none   : no pool row (index -1); no negative guidance.
// Comparisons are on float32 values; "ties -> lowest j" makes far/close independent of the order in
// which candidate blocks arrive, which is what lets dist/ visit the pool in ring order.
//
// Building blocks: make_best / update_best / finish_best (far, close), select_median (median over full
// rows), random_negative_index (random), check_pool_size (argument rules), no_negatives (zero, none).
// SelectionAccumulator composes them over pool shards that arrive in any order; select_negatives (here)
// and dist::select_negatives_distributed are both thin drivers of it.
#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "negatives/strategy.hpp"

namespace adaptdiff::negatives {

/// Index stored for "no pool row" (strategies zero and none).
inline constexpr int64_t kNoNegative = -1;

/// The chosen negatives of nq consecutive queries.
struct Selection {
  /// [nq] int64, CPU: global pool row of the negative of each query; kNoNegative (-1) for zero/none.
  torch::Tensor negative_index;
  /// [nq] float32, CPU: sim(query, pool[negative_index]) as defined in similarity.hpp (for random too).
  /// NaN for zero/none: the cosine similarity to the zero vector (0/0) or to no vector is undefined.
  torch::Tensor negative_similarity;
};

/// Running best candidate of each query while candidate blocks arrive in any order (far, close).
struct Best {
  int64_t query_offset = 0;        ///< global identity index of local query 0
  std::vector<float> similarity;   ///< [nq] best sim so far; NaN while no candidate has been seen
  std::vector<int64_t> index;      ///< [nq] global pool row of the best so far; -1 while none seen
};

/// update_best's rule: true if candidate (sim, index) replaces the best so far (best_sim, best_index) for
/// far (lower sim) or close (higher sim); equal sims go to the lower index; best_index < 0 means none yet.
inline bool replaces_best(Strategy strategy, float sim, int64_t index, float best_sim, int64_t best_index) {
  if (best_index < 0) return true;
  if (sim == best_sim) return index < best_index;
  return strategy == Strategy::kFar ? sim < best_sim : sim > best_sim;
}

/// A Best for queries [query_offset, query_offset + n_queries) with no candidate seen yet.
/// Throws InputError if n_queries < 0 or query_offset < 0.
Best make_best(int64_t n_queries, int64_t query_offset);

/// Folds one similarity block into `best` (strategy far or close).
/// sim_block: [bq, bc] float32 CPU, row a = local query row_begin + a, column b = global pool row
///   candidate_offset + b (as returned by similarity_block).
/// exclude_self: skip the pair whose global query index (best.query_offset + row_begin + a) equals its
///   global candidate index (pool is the identity set).
/// A candidate replaces the current best if its sim is strictly better (lower for far, higher for close)
/// or equal with a lower index, so the result is independent of the order of the blocks.
/// Throws InputError for another strategy, a wrong dtype/rank, or rows outside `best`.
void update_best(Best& best, Strategy strategy, const torch::Tensor& sim_block, int64_t row_begin,
                 int64_t candidate_offset, bool exclude_self);

/// Converts a finished Best into a Selection (copies). A query that never saw a candidate keeps -1/NaN.
Selection finish_best(const Best& best);

/// Median strategy over full similarity rows (upstream's `argsort(cos)[N // 2]`).
/// rows: [nq, n] float32 CPU, rows[a][j] = sim(query a, pool row j) for ALL n pool rows in global order
/// (the query's own row included when the pool is the identity set).
/// Picks, among the n rows sorted by (sim ascending, index ascending), position floor(n/2).
/// Throws InputError on wrong dtype/rank or when n = 0.
Selection select_median(const torch::Tensor& rows);

/// The k-th output (k >= 1) of a SplitMix64 generator whose state starts at `seed`:
/// z = seed + k * 0x9E3779B97F4A7C15 (mod 2^64); z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
/// z = (z ^ (z >> 27)) * 0x94D049BB133111EB; return z ^ (z >> 31).
/// Ref: Steele, Lea & Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014; constants
/// of the public-domain reference splitmix64.c by S. Vigna (seed 0 gives 0xE220A8397B1DCDAF first).
uint64_t splitmix64(uint64_t seed, uint64_t k);

/// The random negative of global identity `identity` (definition "random" above):
/// c = pool_size - 1 (identity set) or pool_size (separate pool); r = floor(splitmix64(seed, identity+1)
/// * c / 2^64) (128-bit multiply-high; bias at most c / 2^64); identity set: r + (r >= identity).
/// Throws InputError if there is no candidate or identity is outside the identity set.
int64_t random_negative_index(uint64_t seed, int64_t identity, int64_t pool_size, bool pool_is_identity_set);

/// The previous negative of global identity `identity`: (identity - 1) mod pool_size.
/// Throws InputError if pool_size < 1 or identity < 0.
int64_t previous_negative_index(int64_t identity, int64_t pool_size);

/// Number of candidates of one query: pool_size - 1 for the identity set, pool_size otherwise.
int64_t candidate_count(int64_t pool_size, bool pool_is_identity_set);

/// Throws InputError (message starts with `operation`) unless `strategy` can run on a pool of
/// `pool_size` rows: far/close/median/random need at least one candidate, i.e. pool_size >= 2 for the
/// identity set and >= 1 for a separate pool; zero/none accept any pool_size >= 0.
void check_pool_size(Strategy strategy, int64_t pool_size, bool pool_is_identity_set, const char* operation);

/// The answer of zero/none for nq queries: indices -1, similarities NaN.
Selection no_negatives(int64_t nq);

/// Incremental selection for nq queries while the pool arrives in shards, in any order (each pool row
/// exactly once). This is the one implementation of far/close/median/random/previous: select_negatives feeds it
/// the whole pool at once, dist::select_negatives_distributed feeds it the shards passed around a ring.
/// Memory: far/close O(nq); median nq x pool_size float32 (full rows are needed for the median);
/// random, previous O(nq). Not thread-safe.
class SelectionAccumulator {
 public:
  /// q_hat: [nq, D] float64 CPU normalised queries (normalize_rows) = identities
  ///   [query_offset, query_offset + nq). pool_size: total pool rows n. seed: random only.
  /// block_rows: query/candidate rows per similarity block of median (results do not depend on it); far and
  ///   close screen all candidates of a shard with float32 products (screened.hpp), with the same result.
  /// Throws InputError: bad q_hat, query_offset < 0, block_rows < 1, check_pool_size fails, or (identity
  /// set) queries outside [0, n).
  SelectionAccumulator(Strategy strategy, torch::Tensor q_hat, int64_t query_offset, int64_t pool_size,
                       bool pool_is_identity_set, uint64_t seed, int64_t block_rows);

  /// Folds pool rows [candidate_offset, candidate_offset + nc) into the selection.
  /// c_hat: [nc, D] float64 CPU normalised pool rows (nc may be 0). No-op for zero/none.
  /// Throws InputError on a bad tensor, a width different from the queries', or rows outside [0, n).
  void add_candidates(const torch::Tensor& c_hat, int64_t candidate_offset);

  /// The selection of the nq queries. Throws InputError if the number of pool rows added differs from
  /// pool_size (a shard missing or added twice) for far/close/median/random.
  Selection finish() const;

 private:
  Strategy strategy_;
  torch::Tensor q_hat_;
  int64_t query_offset_;
  int64_t pool_size_;
  bool exclude_self_;
  int64_t block_rows_;
  int64_t rows_added_ = 0;
  Best best_;            // far, close
  torch::Tensor rows_;   // median: [nq, pool_size] float32
  Selection fixed_;      // random, previous: indices fixed up front, similarities filled as their rows arrive
};

/// Serial selection for queries [query_offset, query_offset + nq) of the identity set.
/// queries: [nq, D] float32 CPU. pool: [n, D] float32 CPU, all candidates in global order; when
///   pool_is_identity_set it is the whole identity set and queries must equal pool rows
///   [query_offset, query_offset + nq) (checked; query i never picks itself).
/// seed: only used by random. block_rows: query rows per accumulator and block (median holds block_rows x n
///   floats); results do not depend on it.
/// zero/none: returns no_negatives(nq) without reading the embeddings.
/// Throws InputError: wrong rank/dtype/device, widths differ, NaN/Inf or zero-norm rows, block_rows < 1,
///   query_offset < 0, queries outside/unequal to the identity set, pool too small (check_pool_size).
Selection select_negatives(const torch::Tensor& queries, int64_t query_offset, const torch::Tensor& pool,
                           bool pool_is_identity_set, Strategy strategy, uint64_t seed,
                           int64_t block_rows = 1024);

}  // namespace adaptdiff::negatives
