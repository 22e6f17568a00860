#include "negatives/selection.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "core/error.hpp"
#include "negatives/screened.hpp"
#include "negatives/similarity.hpp"

namespace adaptdiff::negatives {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

void check_sim_matrix(const torch::Tensor& t, const char* operation) {
  if (!t.defined() || t.dim() != 2 || t.scalar_type() != torch::kFloat || !t.device().is_cpu()) {
    throw InputError(std::string(operation) + ": similarity block must be a 2-D float32 CPU tensor");
  }
}

}  // namespace

Best make_best(int64_t n_queries, int64_t query_offset) {
  if (n_queries < 0 || query_offset < 0) {
    throw InputError("negatives::make_best: need n_queries >= 0 and query_offset >= 0, got " +
                     std::to_string(n_queries) + " and " + std::to_string(query_offset));
  }
  Best best;
  best.query_offset = query_offset;
  best.similarity.assign(static_cast<size_t>(n_queries), kNaN);
  best.index.assign(static_cast<size_t>(n_queries), kNoNegative);
  return best;
}

void update_best(Best& best, Strategy strategy, const torch::Tensor& sim_block, int64_t row_begin,
                 int64_t candidate_offset, bool exclude_self) {
  if (strategy != Strategy::kFar && strategy != Strategy::kClose) {
    throw InputError(std::string("negatives::update_best: strategy must be far or close, got ") +
                     to_string(strategy));
  }
  check_sim_matrix(sim_block, "negatives::update_best");
  const torch::Tensor block = sim_block.contiguous();
  const int64_t bq = block.size(0);
  const int64_t bc = block.size(1);
  const auto n = static_cast<int64_t>(best.index.size());
  if (row_begin < 0 || row_begin + bq > n || candidate_offset < 0) {
    throw InputError("negatives::update_best: block rows [" + std::to_string(row_begin) + ", " +
                     std::to_string(row_begin + bq) + ") outside the " + std::to_string(n) +
                     " queries, or negative candidate offset " + std::to_string(candidate_offset));
  }
  const float* s = block.data_ptr<float>();
  for (int64_t a = 0; a < bq; ++a) {
    const int64_t row = row_begin + a;
    const int64_t self = exclude_self ? best.query_offset + row : -1;
    float best_sim = best.similarity[static_cast<size_t>(row)];
    int64_t best_index = best.index[static_cast<size_t>(row)];
    for (int64_t b = 0; b < bc; ++b) {
      const int64_t j = candidate_offset + b;
      if (j == self) continue;
      const float sim = s[a * bc + b];
      if (replaces_best(strategy, sim, j, best_sim, best_index)) {
        best_sim = sim;
        best_index = j;
      }
    }
    best.similarity[static_cast<size_t>(row)] = best_sim;
    best.index[static_cast<size_t>(row)] = best_index;
  }
}

Selection finish_best(const Best& best) {
  const auto n = static_cast<int64_t>(best.index.size());
  Selection out;
  out.negative_index = torch::empty({n}, torch::TensorOptions().dtype(torch::kLong));
  out.negative_similarity = torch::empty({n}, torch::TensorOptions().dtype(torch::kFloat));
  std::copy(best.index.begin(), best.index.end(), out.negative_index.data_ptr<int64_t>());
  std::copy(best.similarity.begin(), best.similarity.end(), out.negative_similarity.data_ptr<float>());
  return out;
}

Selection select_median(const torch::Tensor& rows) {
  check_sim_matrix(rows, "negatives::select_median");
  const torch::Tensor full = rows.contiguous();
  const int64_t nq = full.size(0);
  const int64_t n = full.size(1);
  if (n < 1) throw InputError("negatives::select_median: the rows hold no pool row");
  Selection out;
  out.negative_index = torch::empty({nq}, torch::TensorOptions().dtype(torch::kLong));
  out.negative_similarity = torch::empty({nq}, torch::TensorOptions().dtype(torch::kFloat));
  int64_t* out_index = out.negative_index.data_ptr<int64_t>();
  float* out_sim = out.negative_similarity.data_ptr<float>();
  const float* s = full.data_ptr<float>();
  std::vector<std::pair<float, int64_t>> ranked(static_cast<size_t>(n));
  const auto position = static_cast<std::ptrdiff_t>(n / 2);
  for (int64_t a = 0; a < nq; ++a) {
    for (int64_t j = 0; j < n; ++j) ranked[static_cast<size_t>(j)] = {s[a * n + j], j};
    // std::pair orders by (sim ascending, index ascending); all sims are finite (normalize_rows checks).
    std::nth_element(ranked.begin(), ranked.begin() + position, ranked.end());
    out_sim[a] = ranked[static_cast<size_t>(position)].first;
    out_index[a] = ranked[static_cast<size_t>(position)].second;
  }
  return out;
}

uint64_t splitmix64(uint64_t seed, uint64_t k) {
  uint64_t z = seed + k * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

int64_t previous_negative_index(int64_t identity, int64_t pool_size) {
  if (pool_size < 1 || identity < 0) {
    throw InputError("negatives::previous_negative_index: identity " + std::to_string(identity) +
                     " has no previous row in a pool of " + std::to_string(pool_size));
  }
  return (identity % pool_size + pool_size - 1) % pool_size;
}

int64_t candidate_count(int64_t pool_size, bool pool_is_identity_set) {
  return pool_is_identity_set ? pool_size - 1 : pool_size;
}

int64_t random_negative_index(uint64_t seed, int64_t identity, int64_t pool_size, bool pool_is_identity_set) {
  const int64_t c = candidate_count(pool_size, pool_is_identity_set);
  if (c < 1 || identity < 0 || (pool_is_identity_set && identity >= pool_size)) {
    throw InputError("negatives::random_negative_index: identity " + std::to_string(identity) +
                     " has no candidate in a pool of " + std::to_string(pool_size) +
                     (pool_is_identity_set ? " (the identity set)" : " (separate pool)"));
  }
  const uint64_t h = splitmix64(seed, static_cast<uint64_t>(identity) + 1);
  const auto r = static_cast<int64_t>((static_cast<unsigned __int128>(h) * static_cast<uint64_t>(c)) >> 64);
  return pool_is_identity_set && r >= identity ? r + 1 : r;
}

void check_pool_size(Strategy strategy, int64_t pool_size, bool pool_is_identity_set, const char* operation) {
  if (pool_size < 0) {
    throw InputError(std::string(operation) + ": pool size " + std::to_string(pool_size) + " < 0");
  }
  if (!picks_pool_row(strategy)) return;
  const int64_t needed = pool_is_identity_set ? 2 : 1;
  if (pool_size < needed) {
    throw InputError(std::string(operation) + ": strategy \"" + to_string(strategy) + "\" needs at least " +
                     std::to_string(needed) + (pool_is_identity_set ? " identities in the identity set"
                                                                    : " identity in the separate pool") +
                     ", got " + std::to_string(pool_size) +
                     "\n---> HINT: use strategy \"zero\" or \"none\", or give a separate negative pool");
  }
}

Selection no_negatives(int64_t nq) {
  Selection out;
  out.negative_index = torch::full({nq}, kNoNegative, torch::TensorOptions().dtype(torch::kLong));
  out.negative_similarity = torch::full({nq}, kNaN, torch::TensorOptions().dtype(torch::kFloat));
  return out;
}

SelectionAccumulator::SelectionAccumulator(Strategy strategy, torch::Tensor q_hat, int64_t query_offset,
                                           int64_t pool_size, bool pool_is_identity_set, uint64_t seed,
                                           int64_t block_rows)
    : strategy_(strategy),
      q_hat_(std::move(q_hat)),
      query_offset_(query_offset),
      pool_size_(pool_size),
      exclude_self_(pool_is_identity_set),
      block_rows_(block_rows) {
  constexpr const char* kOp = "negatives::SelectionAccumulator";
  if (!q_hat_.defined() || q_hat_.dim() != 2 || q_hat_.scalar_type() != torch::kDouble || !q_hat_.device().is_cpu()) {
    throw InputError(std::string(kOp) + ": q_hat must be a 2-D float64 CPU tensor (output of normalize_rows)");
  }
  const int64_t nq = q_hat_.size(0);
  if (query_offset < 0) throw InputError(std::string(kOp) + ": query_offset must be >= 0, got " + std::to_string(query_offset));
  if (block_rows < 1) throw InputError(std::string(kOp) + ": block_rows must be >= 1, got " + std::to_string(block_rows));
  check_pool_size(strategy, pool_size, pool_is_identity_set, kOp);
  if (!picks_pool_row(strategy)) return;
  if (pool_is_identity_set && query_offset + nq > pool_size) {
    throw InputError(std::string(kOp) + ": queries [" + std::to_string(query_offset) + ", " +
                     std::to_string(query_offset + nq) + ") lie outside the identity set of " + std::to_string(pool_size));
  }
  switch (strategy) {
    case Strategy::kFar:
    case Strategy::kClose:
      best_ = make_best(nq, query_offset);
      break;
    case Strategy::kMedian:
      rows_ = torch::empty({nq, pool_size}, torch::TensorOptions().dtype(torch::kFloat));
      break;
    case Strategy::kRandom:
    case Strategy::kPrevious: {
      fixed_ = no_negatives(nq);
      int64_t* index = fixed_.negative_index.data_ptr<int64_t>();
      for (int64_t a = 0; a < nq; ++a)
        index[a] = strategy == Strategy::kRandom
                       ? random_negative_index(seed, query_offset + a, pool_size, pool_is_identity_set)
                       : previous_negative_index(query_offset + a, pool_size);
      break;
    }
    default:
      break;
  }
}

void SelectionAccumulator::add_candidates(const torch::Tensor& c_hat, int64_t candidate_offset) {
  constexpr const char* kOp = "negatives::SelectionAccumulator::add_candidates";
  if (!picks_pool_row(strategy_)) return;
  if (!c_hat.defined() || c_hat.dim() != 2 || c_hat.scalar_type() != torch::kDouble || !c_hat.device().is_cpu()) {
    throw InputError(std::string(kOp) + ": c_hat must be a 2-D float64 CPU tensor (output of normalize_rows)");
  }
  const int64_t nq = q_hat_.size(0);
  const int64_t nc = c_hat.size(0);
  if (candidate_offset < 0 || candidate_offset + nc > pool_size_) {
    throw InputError(std::string(kOp) + ": pool rows [" + std::to_string(candidate_offset) + ", " +
                     std::to_string(candidate_offset + nc) + ") outside the pool of " + std::to_string(pool_size_));
  }
  if (nq > 0 && nc > 0 && c_hat.size(1) != q_hat_.size(1)) {
    throw InputError(std::string(kOp) + ": pool rows have width " + std::to_string(c_hat.size(1)) +
                     " but the queries have width " + std::to_string(q_hat_.size(1)));
  }
  rows_added_ += nc;
  if (nq == 0 || nc == 0) return;

  if (strategy_ == Strategy::kRandom || strategy_ == Strategy::kPrevious) {
    const int64_t* index = fixed_.negative_index.data_ptr<int64_t>();
    float* sim = fixed_.negative_similarity.data_ptr<float>();
    for (int64_t a = 0; a < nq; ++a) {
      const int64_t j = index[a] - candidate_offset;
      if (j < 0 || j >= nc) continue;
      sim[a] = similarity_block(q_hat_.narrow(0, a, 1), c_hat.narrow(0, j, 1)).item<float>();
    }
    return;
  }
  if (strategy_ == Strategy::kFar || strategy_ == Strategy::kClose) {
    update_best_screened(best_, strategy_, q_hat_, c_hat, candidate_offset, exclude_self_);
    return;
  }
  for (int64_t q0 = 0; q0 < nq; q0 += block_rows_) {
    const int64_t bq = std::min(block_rows_, nq - q0);
    const torch::Tensor q_block = q_hat_.narrow(0, q0, bq);
    for (int64_t c0 = 0; c0 < nc; c0 += block_rows_) {
      const int64_t bc = std::min(block_rows_, nc - c0);
      rows_.narrow(0, q0, bq).narrow(1, candidate_offset + c0, bc).copy_(similarity_block(q_block, c_hat.narrow(0, c0, bc)));
    }
  }
}

Selection SelectionAccumulator::finish() const {
  const int64_t nq = q_hat_.size(0);
  if (!picks_pool_row(strategy_)) return no_negatives(nq);
  if (rows_added_ != pool_size_) {
    throw InputError("negatives::SelectionAccumulator::finish: " + std::to_string(rows_added_) +
                     " pool rows were added, expected each of the " + std::to_string(pool_size_) + " exactly once");
  }
  switch (strategy_) {
    case Strategy::kFar:
    case Strategy::kClose:
      return finish_best(best_);
    case Strategy::kMedian:
      return select_median(rows_);
    default:
      return Selection{fixed_.negative_index.clone(), fixed_.negative_similarity.clone()};
  }
}

Selection select_negatives(const torch::Tensor& queries, int64_t query_offset, const torch::Tensor& pool,
                           bool pool_is_identity_set, Strategy strategy, uint64_t seed, int64_t block_rows) {
  constexpr const char* kOp = "negatives::select_negatives";
  if (!queries.defined() || queries.dim() != 2) {
    throw InputError(std::string(kOp) + ": queries must be a 2-D tensor [nq, D]");
  }
  const int64_t nq = queries.size(0);
  if (!picks_pool_row(strategy)) return no_negatives(nq);

  if (block_rows < 1) throw InputError(std::string(kOp) + ": block_rows must be >= 1, got " + std::to_string(block_rows));
  if (query_offset < 0) throw InputError(std::string(kOp) + ": query_offset must be >= 0, got " + std::to_string(query_offset));
  if (!pool.defined() || pool.dim() != 2) throw InputError(std::string(kOp) + ": pool must be a 2-D tensor [n, D]");
  const int64_t n = pool.size(0);
  check_pool_size(strategy, n, pool_is_identity_set, kOp);
  const torch::Tensor q_hat = normalize_rows(queries, "queries");
  const torch::Tensor p_hat = normalize_rows(pool, "pool");
  if (nq > 0 && q_hat.size(1) != p_hat.size(1)) {
    throw InputError(std::string(kOp) + ": queries have width " + std::to_string(q_hat.size(1)) +
                     " but the pool has width " + std::to_string(p_hat.size(1)));
  }
  if (pool_is_identity_set) {
    if (query_offset + nq > n) {
      throw InputError(std::string(kOp) + ": queries [" + std::to_string(query_offset) + ", " +
                       std::to_string(query_offset + nq) + ") lie outside the identity set of " + std::to_string(n));
    }
    if (nq > 0 && !torch::equal(queries.contiguous(), pool.narrow(0, query_offset, nq).contiguous())) {
      throw InputError(std::string(kOp) + ": with pool_is_identity_set the queries must equal pool rows [" +
                       std::to_string(query_offset) + ", " + std::to_string(query_offset + nq) + ")");
    }
  }
  // One accumulator per block of queries keeps the median's full rows at block_rows x n floats.
  std::vector<torch::Tensor> index{torch::empty({0}, torch::TensorOptions().dtype(torch::kLong))};
  std::vector<torch::Tensor> sim{torch::empty({0}, torch::TensorOptions().dtype(torch::kFloat))};
  for (int64_t q0 = 0; q0 < nq; q0 += block_rows) {
    const int64_t bq = std::min(block_rows, nq - q0);
    SelectionAccumulator acc(strategy, q_hat.narrow(0, q0, bq), query_offset + q0, n, pool_is_identity_set, seed,
                             block_rows);
    acc.add_candidates(p_hat, 0);
    Selection part = acc.finish();
    index.push_back(part.negative_index);
    sim.push_back(part.negative_similarity);
  }
  return Selection{torch::cat(index), torch::cat(sim)};
}

}  // namespace adaptdiff::negatives
