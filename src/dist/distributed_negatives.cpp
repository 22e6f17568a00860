#include "dist/distributed_negatives.hpp"

#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "dist/agree.hpp"
#include "negatives/screened.hpp"
#include "negatives/similarity.hpp"

namespace adaptdiff::dist {
namespace {

constexpr int kRingTag = 7301;
constexpr int64_t kUnset = std::numeric_limits<int64_t>::max();

bool is_f32_matrix(const torch::Tensor& t) {
  return t.defined() && t.dim() == 2 && t.scalar_type() == torch::kFloat && t.device().is_cpu();
}

struct NamedValue {
  const char* name;
  int64_t value;
};

// Collective, one agreement (dist/agree.hpp). Throws InputError on every rank when any rank has a local
// error (the lowest failing rank's message), when a value of `same` differs between ranks, or when the widths
// reported by the ranks differ (width_lo/width_hi: this rank's smallest/largest width, kUnset/-1 if it has
// none). Returns the common width, -1 if none.
int64_t agree_on_arguments(const Comm& comm, const std::string& local_error, const std::vector<NamedValue>& same,
                           int64_t width_lo, int64_t width_hi, const char* operation) {
  // Maxima of (v, -v) give both ends of every value's range in the agreement's one allreduce.
  std::vector<int64_t> flags{width_hi, width_lo == kUnset ? -kUnset : -width_lo};
  for (const auto& v : same) {
    flags.push_back(v.value);
    flags.push_back(-v.value);
  }
  const std::vector<int64_t> range = agree(comm, operation, [&] {
    if (!local_error.empty()) throw InputError(local_error);
  }, flags);
  for (size_t i = 0; i < same.size(); ++i) {
    const int64_t hi = range[2 + 2 * i], lo = -range[3 + 2 * i];
    if (lo != hi) {
      throw InputError(std::string(operation) + ": ranks disagree on " + same[i].name + " (values from " +
                       std::to_string(lo) + " to " + std::to_string(hi) + "); it must be the same everywhere");
    }
  }
  const int64_t hi = range[0], lo = -range[1];
  if (lo != kUnset && lo != hi) {
    throw InputError(std::string(operation) + ": embedding widths differ across shards (from " + std::to_string(lo) +
                     " to " + std::to_string(hi) + ")");
  }
  return hi;
}

// Collective. Throws InputError on every rank if any rank has a local error.
void agree_on_errors(const Comm& comm, const std::string& local_error, const char* operation) {
  agree_on_arguments(comm, local_error, {}, kUnset, -1, operation);
}

// Where every rank's pool shard lies: rows [begin[r], begin[r] + rows[r]).
struct PoolLayout {
  std::vector<int64_t> begin;
  std::vector<int64_t> rows;
};

// Collective. Gathers the shard extents and checks (identically on every rank) that they tile
// [0, pool_total) exactly.
PoolLayout gather_layout(const Comm& comm, int64_t p_begin, int64_t m_r, int64_t pool_total, const char* operation) {
  PoolLayout layout{comm.allgather(p_begin), comm.allgather(m_r)};
  std::vector<std::pair<int64_t, int64_t>> shards;
  for (size_t r = 0; r < layout.begin.size(); ++r) {
    if (layout.rows[r] > 0) shards.emplace_back(layout.begin[r], layout.rows[r]);
  }
  std::sort(shards.begin(), shards.end());
  int64_t covered = 0;
  for (const auto& [begin, rows] : shards) {
    if (begin != covered) break;
    covered += rows;
  }
  int64_t total = 0;
  for (int64_t rows : layout.rows) total += rows;
  if (covered != pool_total || total != pool_total) {
    std::string extents;
    for (size_t r = 0; r < layout.begin.size(); ++r) {
      extents += " rank " + std::to_string(r) + ": [" + std::to_string(layout.begin[r]) + ", " +
                 std::to_string(layout.begin[r] + layout.rows[r]) + ")";
    }
    throw InputError(std::string(operation) + ": pool shards must tile [0, " + std::to_string(pool_total) +
                     ") without gap or overlap; got" + extents);
  }
  return layout;
}

// Collective. Calls visit(shard, begin, owner) once for the shard of every rank, own shard first, while
// the shards travel around the ring r -> r+1 (P-1 MPI_Sendrecv steps; empty shards travel too, so every
// rank makes the same calls). shard: [rows, width] float32 contiguous. If `visit` throws on a rank, that
// rank stops visiting but keeps passing shards, so its neighbours are not left waiting; afterwards every
// rank throws the lowest failing rank's error, of its type (dist::agree).
template <typename Visit>
void ring_pass(const Comm& comm, torch::Tensor my_shard, const PoolLayout& layout, int64_t width, Visit&& visit,
               const char* operation) {
  const int P = comm.size();
  const int r = comm.rank();
  std::exception_ptr failure;
  torch::Tensor current = std::move(my_shard);
  for (int step = 0; step < P; ++step) {
    const int owner = ((r - step) % P + P) % P;
    if (!failure) {
      try {
        visit(current, layout.begin[static_cast<size_t>(owner)], owner);
      } catch (...) {
        failure = std::current_exception();
      }
    }
    if (step + 1 == P) break;
    const int incoming = ((r - step - 1) % P + P) % P;
    torch::Tensor next =
        torch::empty({layout.rows[static_cast<size_t>(incoming)], width}, torch::TensorOptions().dtype(torch::kFloat));
    comm.sendrecv(current.data_ptr<float>(), current.numel(), (r + 1) % P, next.data_ptr<float>(), next.numel(),
                  (r - 1 + P) % P, kRingTag);
    current = std::move(next);
  }
  agree(comm, operation, [&] {
    if (failure) std::rethrow_exception(failure);
  });
}

}  // namespace

negatives::Selection select_negatives_distributed(const Comm& comm, const torch::Tensor& my_queries,
                                                  int64_t q_begin, const torch::Tensor& my_pool, int64_t p_begin,
                                                  int64_t pool_total, bool pool_is_identity_set,
                                                  negatives::Strategy strategy, uint64_t seed,
                                                  int64_t block_rows) {
  constexpr const char* kOp = "dist::select_negatives_distributed";
  const std::string where = std::string(kOp) + " (rank " + std::to_string(comm.rank()) + "): ";
  const bool needs_pool = negatives::picks_pool_row(strategy);

  // 1. Local argument checks (no throw yet: every rank must reach the agreement below).
  std::string error;
  int64_t n_r = 0, m_r = 0, width_lo = kUnset, width_hi = -1;
  if (!is_f32_matrix(my_queries)) {
    error = where + "my_queries must be a 2-D float32 CPU tensor [n_r, D]";
  } else if (needs_pool && !is_f32_matrix(my_pool)) {
    error = where + "my_pool must be a 2-D float32 CPU tensor [m_r, D]";
  } else {
    n_r = my_queries.size(0);
    if (n_r > 0) width_lo = width_hi = my_queries.size(1);
    if (needs_pool) {
      m_r = my_pool.size(0);
      if (m_r > 0) {
        width_lo = std::min(width_lo, my_pool.size(1));
        width_hi = std::max(width_hi, my_pool.size(1));
      }
    }
    if (q_begin < 0 || p_begin < 0 || pool_total < 0) {
      error = where + "need q_begin, p_begin, pool_total >= 0, got " + std::to_string(q_begin) + ", " +
              std::to_string(p_begin) + ", " + std::to_string(pool_total);
    } else if (block_rows < 1) {
      error = where + "block_rows must be >= 1, got " + std::to_string(block_rows);
    } else if (needs_pool && pool_is_identity_set && q_begin + n_r > pool_total) {
      error = where + "queries [" + std::to_string(q_begin) + ", " + std::to_string(q_begin + n_r) +
              ") lie outside the identity set of " + std::to_string(pool_total);
    }
  }
  int64_t seed_bits = 0;
  std::memcpy(&seed_bits, &seed, sizeof seed_bits);
  std::vector<NamedValue> same{{"the strategy", static_cast<int64_t>(strategy)},
                               {"pool_total", pool_total},
                               {"pool_is_identity_set", pool_is_identity_set ? 1 : 0}};
  if (strategy == negatives::Strategy::kRandom) same.push_back({"the random seed", seed_bits});
  const int64_t width = agree_on_arguments(comm, error, same, width_lo, width_hi, kOp);
  if (!needs_pool) return negatives::no_negatives(n_r);

  // 2. Global checks: identical inputs on every rank, so every rank throws alike.
  negatives::check_pool_size(strategy, pool_total, pool_is_identity_set, kOp);
  const PoolLayout layout = gather_layout(comm, p_begin, m_r, pool_total, kOp);

  // 3. Normalise the local shards and set up the accumulator (errors agreed before the ring starts).
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  const torch::Tensor queries_raw = n_r > 0 ? my_queries.contiguous() : torch::empty({0, width}, f32);
  const torch::Tensor pool_raw = m_r > 0 ? my_pool.contiguous() : torch::empty({0, width}, f32);
  torch::Tensor p_hat;
  std::unique_ptr<negatives::SelectionAccumulator> acc;
  try {
    p_hat = negatives::normalize_rows(pool_raw, "pool shard");
    acc = std::make_unique<negatives::SelectionAccumulator>(
        strategy, negatives::normalize_rows(queries_raw, "queries"), q_begin, pool_total, pool_is_identity_set, seed,
        block_rows);
  } catch (const InputError& e) {
    error = where + e.what();
  }
  agree_on_errors(comm, error, kOp);

  // 4. Ring: fold every pool shard into the accumulator; check identity rows against the queries.
  //    (An exception in the visitor is agreed on by ring_pass, so every rank throws.)
  ring_pass(
      comm, pool_raw, layout, width,
      [&](const torch::Tensor& shard, int64_t begin, int owner) {
        const int64_t rows = shard.size(0);
        if (rows == 0) return;
        acc->add_candidates(owner == comm.rank() ? p_hat : negatives::normalize_rows(shard, "pool shard"), begin);
        if (!pool_is_identity_set) return;
        const float* q = queries_raw.data_ptr<float>();
        const float* p = shard.data_ptr<float>();
        for (int64_t g = std::max(begin, q_begin); g < std::min(begin + rows, q_begin + n_r); ++g) {
          if (!std::equal(q + (g - q_begin) * width, q + (g - q_begin + 1) * width, p + (g - begin) * width)) {
            throw InputError(where + "with pool_is_identity_set each query must equal its pool row; identity " +
                             std::to_string(g) + " differs");
          }
        }
      },
      kOp);
  return acc->finish();
}

torch::Tensor gather_pool_rows(const Comm& comm, const torch::Tensor& indices, const torch::Tensor& my_pool,
                               int64_t p_begin, int64_t pool_total) {
  constexpr const char* kOp = "dist::gather_pool_rows";
  const std::string where = std::string(kOp) + " (rank " + std::to_string(comm.rank()) + "): ";
  std::string error;
  int64_t m_r = 0, width_lo = kUnset, width_hi = -1;
  torch::Tensor index;
  if (!indices.defined() || indices.dim() != 1 || indices.scalar_type() != torch::kLong || !indices.device().is_cpu()) {
    error = where + "indices must be a 1-D int64 CPU tensor";
  } else if (!is_f32_matrix(my_pool)) {
    error = where + "my_pool must be a 2-D float32 CPU tensor [m_r, D]";
  } else if (p_begin < 0 || pool_total < 0) {
    error = where + "need p_begin, pool_total >= 0";
  } else {
    index = indices.contiguous();
    m_r = my_pool.size(0);
    if (m_r > 0) width_lo = width_hi = my_pool.size(1);
    const int64_t* idx = index.data_ptr<int64_t>();
    for (int64_t a = 0; a < index.numel(); ++a) {
      if (idx[a] < -1 || idx[a] >= pool_total) {
        error = where + "index " + std::to_string(idx[a]) + " at position " + std::to_string(a) + " outside [-1, " +
                std::to_string(pool_total) + ")";
        break;
      }
    }
  }
  const int64_t agreed = agree_on_arguments(comm, error, {{"pool_total", pool_total}}, width_lo, width_hi, kOp);
  const int64_t width = std::max<int64_t>(agreed, 0);
  const PoolLayout layout = gather_layout(comm, p_begin, m_r, pool_total, kOp);

  const auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  const int64_t k = index.numel();
  torch::Tensor out = torch::zeros({k, width}, f32);
  float* o = out.data_ptr<float>();
  const int64_t* idx = index.data_ptr<int64_t>();
  ring_pass(comm, m_r > 0 ? my_pool.contiguous() : torch::empty({0, width}, f32), layout, width,
            [&](const torch::Tensor& shard, int64_t begin, int /*owner*/) {
              const int64_t rows = shard.size(0);
              const float* s = shard.data_ptr<float>();
              for (int64_t a = 0; a < k; ++a) {
                if (idx[a] >= begin && idx[a] < begin + rows) {
                  std::copy(s + (idx[a] - begin) * width, s + (idx[a] - begin + 1) * width, o + a * width);
                }
              }
            },
            kOp);
  return out;
}

negatives::Selection select_negatives_on_device(const Comm& comm, const NcclComm& nccl, const SelectionShard& shard,
                                                negatives::Strategy strategy) {
  constexpr const char* kOp = "dist::select_negatives_on_device";
  const std::string where = std::string(kOp) + " (rank " + std::to_string(comm.rank()) + "): ";
  std::string error;
  int64_t width_lo = kUnset, width_hi = -1;
  if (strategy != negatives::Strategy::kFar && strategy != negatives::Strategy::kClose) {
    error = where + "strategy must be far or close, got " + negatives::to_string(strategy);
  } else if (!is_f32_matrix(shard.queries) || !is_f32_matrix(shard.pool)) {
    error = where + "queries and pool must be 2-D float32 CPU tensors";
  } else if (shard.query_begin < 0 || shard.pool_begin < 0 || shard.pool_total < 0) {
    error = where + "need query_begin, pool_begin, pool_total >= 0";
  } else {
    for (const torch::Tensor* t : {&shard.queries, &shard.pool}) {
      if (t->size(0) == 0) continue;
      width_lo = std::min(width_lo, t->size(1));
      width_hi = std::max(width_hi, t->size(1));
    }
  }
  const int64_t width = agree_on_arguments(
      comm, error,
      {{"the strategy", static_cast<int64_t>(strategy)}, {"pool_total", shard.pool_total},
       {"pool_is_identity_set", shard.pool_is_identity_set ? 1 : 0}},
      width_lo, width_hi, kOp);
  negatives::check_pool_size(strategy, shard.pool_total, shard.pool_is_identity_set, kOp);
  const int64_t m_r = shard.pool.size(0), n_r = shard.queries.size(0);
  const PoolLayout layout = gather_layout(comm, shard.pool_begin, m_r, shard.pool_total, kOp);
  for (size_t r = 1; r < layout.begin.size(); ++r) {  // NCCL gathers in rank order
    if (layout.begin[r] != layout.begin[r - 1] + layout.rows[r - 1]) {
      throw InputError(std::string(kOp) + ": pool shards must lie in rank order; rank " + std::to_string(r) +
                       " starts at row " + std::to_string(layout.begin[r]));
    }
  }
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  const torch::Tensor mine = m_r > 0 ? shard.pool.contiguous() : torch::empty({0, std::max<int64_t>(width, 0)}, f32);
  const torch::Tensor pool = nccl.all_gather_rows(mine.to(nccl.device()), layout.rows).to(torch::kCPU);
  negatives::Best best = negatives::make_best(n_r, shard.query_begin);
  agree(comm, kOp, [&] {
    const torch::Tensor queries = n_r > 0 ? shard.queries.contiguous() : torch::empty({0, pool.size(1)}, f32);
    if (shard.pool_is_identity_set &&
        (shard.query_begin + n_r > shard.pool_total ||
         !torch::equal(queries, pool.narrow(0, shard.query_begin, n_r)))) {
      throw InputError(where + "with pool_is_identity_set each query must equal its pool row");
    }
    const torch::Tensor pool_hat = negatives::normalize_rows(pool, "pool");
    negatives::update_best_screened_on_device(best, strategy, negatives::normalize_rows(queries, "queries"), pool_hat,
                                              pool_hat.to(torch::kFloat).to(nccl.device()),
                                              shard.pool_is_identity_set);
  });
  return negatives::finish_best(best);
}

}  // namespace adaptdiff::dist
