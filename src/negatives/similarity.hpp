#pragma once
// Cosine similarity between identity embeddings, defined so that every value is bit-reproducible
// whatever the blocking, the rank count, the thread count or the BLAS library.
//
// Definition (D = embedding width, x and y float32 rows):
//   norm(x)   = sqrt( s_{D-1} ),  s_{-1} = 0.0,  s_k = s_{k-1} + double(x_k) * double(x_k)   (float64)
//   xhat_k    = double(x_k) / norm(x)                                                      (float64)
//   dot(a, b) = t_{D-1},  t_{-1} = 0.0,  t_k = t_{k-1} + a_k * b_k                          (float64)
//   sim(x, y) = float( dot(xhat, yhat) )            (round-to-nearest float64 -> float32)
// Every float64 operation above is an individually rounded IEEE-754 operation in exactly this order
// (k ascending, no fused multiply-add, division rather than multiplication by a reciprocal).
// Selection then compares the float32 values.
//
// Why not a float64 BLAS matmul followed by rounding to float32 (the obvious approach): a BLAS GEMM may
// sum the D products in an order that depends on the matrix shape (gemv for one-row blocks, edge
// kernels, threading), so the float64 result of one pair can differ in its last bits between two
// blockings. Rounding to float32 hides that almost always, but not when the float64 value lies next to
// a float32 rounding midpoint; with 10^8 pairs that happens. Fixing the summation order removes the
// problem by construction; the price is a hand-written (register-tiled, vectorisable) kernel instead of
// a BLAS call. Cost: nq*nc*D multiply-adds; measured 1.4 GMAC/s per core (OpenBLAS dgemm: 2.5) on the
// x86-64 development VM, i.e. about 40 core-seconds for 10^4 identities x 10^4 candidates x 512.
// Build requirement: no -ffast-math / -fassociative-math, and -ffp-contract=off (set by CMake for this
// target; similarity.cpp refuses to compile under -ffast-math).
#include <torch/types.h>

namespace adaptdiff::negatives {

/// Normalises the rows of `rows` as defined above.
/// rows: [n, D] float32, CPU (any strides); n may be 0 (then D may be 0 too).
/// Returns [n, D] float64, CPU, contiguous: row i is xhat of rows[i].
/// Throws InputError if `rows` is not a 2-D float32 CPU tensor, or if a row holds NaN/Inf or has zero
/// norm; the message names `what` (e.g. "queries") and the row.
torch::Tensor normalize_rows(const torch::Tensor& rows, const char* what);

/// Similarities of a block of normalised queries against a block of normalised candidates:
/// out[a][b] = float( dot(q_hat[a], p_hat[b]) ) as defined above.
/// q_hat: [nq, D] float64 CPU, p_hat: [nc, D] float64 CPU (outputs of normalize_rows; any of nq, nc
/// may be 0). Returns [nq, nc] float32, CPU, contiguous. Each value depends only on the two rows
/// involved, never on nq, nc, the position in the block or the number of intra-op threads (the work is
/// split over query rows with at::parallel_for).
/// Throws InputError on wrong rank/dtype/device or different widths.
torch::Tensor similarity_block(const torch::Tensor& q_hat, const torch::Tensor& p_hat);

/// sim of one pair of normalised rows (D float64 values each, outputs of normalize_rows): float(dot(x_hat,
/// y_hat)) as defined above, the same bits as the matching entry of similarity_block.
float similarity_pair(const double* x_hat, const double* y_hat, int64_t D);

}  // namespace adaptdiff::negatives
