#include "eval/scores.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "dist/comm.hpp"
#include "dist/partition.hpp"

namespace adaptdiff::eval {

namespace {

std::string first_rows(const torch::Tensor& mask, int64_t& count) {
  const torch::Tensor rows = mask.nonzero().flatten();
  count = rows.numel();
  std::string text;
  for (int64_t k = 0; k < std::min<int64_t>(count, 5); ++k) {
    text += (k ? ", " : "") + std::to_string(rows[k].item<int64_t>());
  }
  if (count > 5) text += ", ...";
  return text;
}

// Scores impostor pairs [begin, end) of the implicit all-pairs enumeration into out[begin, end).
void score_all_impostors(const CosineScorer& score, const std::vector<int64_t>& identity, const PairPlan& plan,
                         dist::Range range, std::vector<double>& out) {
  if (range.empty()) return;
  const auto n = static_cast<int64_t>(identity.size());
  int64_t i = std::upper_bound(plan.row_offset.begin(), plan.row_offset.end(), range.begin) - plan.row_offset.begin() - 1;
  int64_t skip = range.begin - plan.row_offset[i];
  int64_t p = range.begin;
  for (; i < n && p < range.end; ++i) {
    for (int64_t j = i + 1; j < n && p < range.end; ++j) {
      if (identity[j] == identity[i]) continue;
      if (skip > 0) {
        --skip;
        continue;
      }
      out[p++] = score(i, j);
    }
  }
}

}  // namespace

void validate_embeddings(const torch::Tensor& embeddings, const torch::Tensor& identity, const std::string& source) {
  const std::string where = "file '" + source + "', dataset ";
  if (embeddings.scalar_type() != torch::kFloat32 || embeddings.dim() != 2 || embeddings.size(0) < 2 ||
      embeddings.size(1) < 1) {
    throw InputError("eval: " + where + "'embeddings' must be float32 [N, D] with N >= 2, D >= 1; found " +
                     std::string(c10::toString(embeddings.scalar_type())) + " " + c10::str(embeddings.sizes()));
  }
  const int64_t n = embeddings.size(0);
  if (identity.scalar_type() != torch::kInt64 || identity.dim() != 1 || identity.size(0) != n) {
    throw InputError("eval: " + where + "'identity' must be int64 [" + std::to_string(n) + "] (one label per row of " +
                     "'embeddings'); found " + std::string(c10::toString(identity.scalar_type())) + " " +
                     c10::str(identity.sizes()));
  }
  int64_t count = 0;
  const std::string bad = first_rows(embeddings.isfinite().logical_not().any(1), count);
  if (count > 0) {
    throw InputError("eval: " + where + "'embeddings' has " + std::to_string(count) +
                     " row(s) with NaN or Inf values: rows " + bad);
  }
  const std::string zero = first_rows(embeddings.to(torch::kFloat64).abs().amax(1).eq(0), count);
  if (count > 0) {
    throw InputError("eval: " + where + "'embeddings' has " + std::to_string(count) +
                     " zero-norm row(s) (cosine similarity undefined): rows " + zero);
  }
}

CosineScorer::CosineScorer(const torch::Tensor& embeddings)
    : data_(embeddings.data_ptr<float>()), dim_(embeddings.size(1)), norm_(static_cast<size_t>(embeddings.size(0))) {
  TORCH_CHECK(embeddings.is_contiguous(), "CosineScorer: embeddings must be contiguous");
  for (size_t r = 0; r < norm_.size(); ++r) {
    const float* x = data_ + static_cast<int64_t>(r) * dim_;
    double s = 0.0;
    for (int64_t d = 0; d < dim_; ++d) s += static_cast<double>(x[d]) * static_cast<double>(x[d]);
    norm_[r] = std::sqrt(s);
  }
}

double CosineScorer::operator()(int64_t a, int64_t b) const {
  const float* x = data_ + a * dim_;
  const float* y = data_ + b * dim_;
  double s = 0.0;
  for (int64_t d = 0; d < dim_; ++d) s += static_cast<double>(x[d]) * static_cast<double>(y[d]);
  return s / (norm_[static_cast<size_t>(a)] * norm_[static_cast<size_t>(b)]);
}

ScoreSet score_pairs(const dist::Comm& comm, const torch::Tensor& embeddings, const std::vector<int64_t>& identity,
                     const PairPlan& plan) {
  const CosineScorer score(embeddings);
  ScoreSet set;
  set.genuine.assign(plan.genuine.size(), 0.0);
  set.impostor.assign(static_cast<size_t>(plan.n_impostor), 0.0);
  const auto n_gen = static_cast<int64_t>(plan.genuine.size());
  const dist::Range g = dist::block_partition(n_gen, comm.rank(), comm.size());
  for (int64_t p = g.begin; p < g.end; ++p) set.genuine[p] = score(plan.genuine[p].first, plan.genuine[p].second);
  const dist::Range r = dist::block_partition(plan.n_impostor, comm.rank(), comm.size());
  if (plan.all_impostors) {
    score_all_impostors(score, identity, plan, r, set.impostor);
  } else {
    for (int64_t p = r.begin; p < r.end; ++p) set.impostor[p] = score(plan.impostor[p].first, plan.impostor[p].second);
  }
  if (comm.size() > 1) {
    // Every index is written by exactly one rank and is 0 elsewhere: the sum is exact.
    set.genuine = comm.allreduce(set.genuine, dist::ReduceOp::kSum);
    set.impostor = comm.allreduce(set.impostor, dist::ReduceOp::kSum);
  }
  return set;
}

}  // namespace adaptdiff::eval
