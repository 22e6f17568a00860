#pragma once
// Far/close selection at the cost of a float32 matrix product, with the exact answer of the definitions.
//
// The exact similarity (similarity.hpp: fixed-order float64 dot, rounded to float32) costs a hand-written
// float64 kernel per pair. Only the pairs that can win need it:
//   1. s = q32 · c32ᵀ, a float32 GEMM (BLAS) of the float32 roundings of the normalised rows;
//   2. per query, m = the lowest s (far; the highest for close) over its candidates (itself excluded);
//   3. every candidate whose s lies within screen_margin(D) of m is scored exactly and folded into the
//      running best by update_best's rule (strictly better, or equal with a lower index).
// Why that is exact. Let c_j be the float64 cosine and r_j = float(c_j) the defined similarity.
//   |s_j − c_j| ≤ δ = (D + 3)·u / (1 − (D + 3)·u), u = 2⁻²⁴: rounding the unit rows to float32 moves each
//   product by at most 2u + u² relative, and any float32 dot product of D terms, in any summation order
//   (blocked, fused multiply-add), errs by at most γ_D·Σ|x_k·y_k| ≤ γ_D·(1 + u)² (Higham, Accuracy and
//   Stability of Numerical Algorithms, 2nd ed., §3.1).
//   Let k be the candidate with the lowest s (m = s_k) and j* the defined winner, so r_j* ≤ r_k. Rounding
//   is monotone, hence c_j* ≤ c_k + ulp, and every j with r_j = r_j* has c_j ≤ c_k + 2·ulp, where ulp ≤ 2⁻²³
//   for |c| ≤ 1. So s_j ≤ c_j + δ ≤ m + 2δ + 2⁻²²: screen_margin(D) = 2δ + 2⁻²² keeps every candidate that
//   could win or tie. (For D = 512: 6.2e-5; random unit embeddings leave about one candidate per query.)
// The float32 product needs IEEE float32 arithmetic (LibTorch's default; not a reduced-precision matmul
// setting such as PyTorch 2.x's float32_matmul_precision "medium").
#include <torch/types.h>

#include <cstdint>

#include "negatives/selection.hpp"

namespace adaptdiff::negatives {

/// The screening margin 2δ + 2⁻²² for embeddings of width D (derivation above).
double screen_margin(int64_t D);

/// Folds pool rows [candidate_offset, candidate_offset + nc) into `best` for far or close, with exactly the
/// result of update_best(best, strategy, similarity_block(q_hat, c_hat), 0, candidate_offset, exclude_self).
/// q_hat: [nq, D] float64 CPU normalised queries, local rows 0..nq-1 of `best` (nq = best's size).
/// c_hat: [nc, D] float64 CPU normalised candidates. The float32 products (oneDNN, else BLAS) and the scans
/// run on the intra-op threads.
/// Throws InputError for another strategy, wrong dtypes/ranks, or widths/sizes that do not fit `best`.
void update_best_screened(Best& best, Strategy strategy, const torch::Tensor& q_hat, const torch::Tensor& c_hat,
                          int64_t candidate_offset, bool exclude_self);

/// The same fold over a whole pool with the float32 products on `device` (a GPU, or the CPU through BLAS):
/// per block of queries one product q32 · pool32ᵀ, the lowest key per row and the shortlist (key ≤ lowest +
/// screen_margin(D)) are found on the device; only the shortlisted pairs travel back and are scored exactly on the
/// CPU. Same result as update_best_screened(best, strategy, q_hat, pool_hat, 0, exclude_self).
/// q_hat [nq, D] float64 CPU normalised queries, local rows of `best`; pool_hat [N, D] float64 CPU normalised pool
/// (pool rows 0..N-1); pool32 [N, D] float32 = pool_hat rounded to float32, on `device` (pool32's device).
/// On CUDA the products run with TF32 and reduced-precision float32 matmul switched off for the call (the bound
/// needs IEEE float32 arithmetic); the previous settings are restored.
/// Throws InputError for another strategy or tensors that do not fit.
void update_best_screened_on_device(Best& best, Strategy strategy, const torch::Tensor& q_hat,
                                    const torch::Tensor& pool_hat, const torch::Tensor& pool32, bool exclude_self);

}  // namespace adaptdiff::negatives
