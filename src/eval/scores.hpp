#pragma once
// Similarity scores of the planned pairs (pairs.hpp): cosine similarity in float64, computed over the ranks of a
// communicator and assembled in the canonical pair order, so the scores are the same bits for any rank count.
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "eval/pairs.hpp"

namespace adaptdiff::dist {
class Comm;
}

namespace adaptdiff::eval {

/// Checks `embeddings` (float32 CPU [N, D], N >= 2, D >= 1) and `identity` (int64 CPU [N]): dtypes, shapes, every
/// row finite and of non-zero norm. `source` names the file in messages, with the datasets `embeddings` and
/// `identity`. Throws InputError naming file, dataset and the first offending rows.
void validate_embeddings(const torch::Tensor& embeddings, const torch::Tensor& identity, const std::string& source);

/// Cosine similarity of two rows of an embedding matrix, in float64:
///   s(a, b) = (sum_d x_ad x_bd) / (sqrt(sum_d x_ad^2) * sqrt(sum_d x_bd^2)),
/// every sum sequential over d in float64 (so a pair's score does not depend on which rank computes it).
class CosineScorer {
 public:
  /// embeddings: float32 CPU [N, D], validated (lent; must outlive the scorer).
  explicit CosineScorer(const torch::Tensor& embeddings);
  double operator()(int64_t a, int64_t b) const;

 private:
  const float* data_;
  int64_t dim_;
  std::vector<double> norm_;
};

/// Genuine and impostor scores in canonical pair order.
struct ScoreSet {
  std::vector<double> genuine;
  std::vector<double> impostor;
};

/// COLLECTIVE over `comm`. Every rank scores its contiguous block (dist::block_partition) of the genuine and of
/// the impostor pairs of `plan` (planned from `identity`, int64 labels of the embedding rows); an allreduce
/// (sum over zeros, exact) places every score at its canonical index on all ranks. embeddings as for
/// CosineScorer, identical on every rank. Throws CommError on communication failure.
ScoreSet score_pairs(const dist::Comm& comm, const torch::Tensor& embeddings, const std::vector<int64_t>& identity,
                     const PairPlan& plan);

}  // namespace adaptdiff::eval
