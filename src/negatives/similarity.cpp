#include "negatives/similarity.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.hpp"

#if defined(__FAST_MATH__)
#error "similarity.cpp must not be compiled with -ffast-math: it would reorder the float64 sums (see similarity.hpp)"
#endif

namespace adaptdiff::negatives {
namespace {

// Register tile of the similarity kernel: kTileQ query rows x kTileC candidates.
constexpr int64_t kTileQ = 4;
constexpr int64_t kTileC = 8;

// One tile. q: first of `tq` normalised query rows (row stride D); pt: normalised candidates transposed,
// [D, nc] row-major; the tile covers candidates [c0, c0 + tc). Every accumulator runs k = 0..D-1 in order
// starting from 0.0, i.e. exactly t_k = t_{k-1} + a_k * b_k of the definition; the compiler may vectorise
// across b (independent accumulators) but may not reorder the sum over k (no -ffast-math, no contraction).
template <int64_t TQ, int64_t TC>
inline void similarity_tile(const double* q, int64_t D, const double* pt, int64_t nc, int64_t c0, int64_t tq,
                            int64_t tc, float* out, int64_t out_stride) {
  double acc[TQ][TC] = {};
  if (tq == TQ && tc == TC) {  // full tile: compile-time bounds so acc lives in registers
    for (int64_t k = 0; k < D; ++k) {
      const double* p = pt + k * nc + c0;
      for (int64_t a = 0; a < TQ; ++a) {
        const double qa = q[a * D + k];
        for (int64_t b = 0; b < TC; ++b) acc[a][b] += qa * p[b];
      }
    }
  } else {  // edge tile: same operations in the same order, runtime bounds
    for (int64_t k = 0; k < D; ++k) {
      const double* p = pt + k * nc + c0;
      for (int64_t a = 0; a < tq; ++a) {
        const double qa = q[a * D + k];
        for (int64_t b = 0; b < tc; ++b) acc[a][b] += qa * p[b];
      }
    }
  }
  for (int64_t a = 0; a < tq; ++a) {
    for (int64_t b = 0; b < tc; ++b) out[a * out_stride + c0 + b] = static_cast<float>(acc[a][b]);
  }
}

void check_normalised(const torch::Tensor& t, const char* what) {
  if (!t.defined() || t.dim() != 2 || t.scalar_type() != torch::kDouble || !t.device().is_cpu()) {
    throw InputError(std::string("negatives::similarity_block: ") + what +
                     " must be a 2-D float64 CPU tensor (output of normalize_rows), got " +
                     (t.defined() ? t.toString() + " of shape " + std::to_string(t.dim()) + "-D" : "undefined"));
  }
}

}  // namespace

torch::Tensor normalize_rows(const torch::Tensor& rows, const char* what) {
  if (!rows.defined() || rows.dim() != 2 || rows.scalar_type() != torch::kFloat || !rows.device().is_cpu()) {
    throw InputError(std::string("negatives::normalize_rows: ") + what +
                     " must be a 2-D float32 CPU tensor [n, D], got " +
                     (rows.defined() ? rows.toString() + " with " + std::to_string(rows.dim()) + " dims"
                                     : std::string("an undefined tensor")));
  }
  const torch::Tensor src = rows.contiguous();
  const int64_t n = src.size(0);
  const int64_t D = src.size(1);
  torch::Tensor out = torch::empty({n, D}, torch::TensorOptions().dtype(torch::kDouble));
  const float* x = src.data_ptr<float>();
  double* y = out.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * D;
    double sum_sq = 0.0;
    for (int64_t k = 0; k < D; ++k) {
      const double v = static_cast<double>(xi[k]);
      if (!std::isfinite(v)) {
        throw InputError(std::string("negatives::normalize_rows: ") + what + " row " + std::to_string(i) +
                         " holds a non-finite value at column " + std::to_string(k));
      }
      sum_sq += v * v;
    }
    if (!(sum_sq > 0.0)) {
      throw InputError(std::string("negatives::normalize_rows: ") + what + " row " + std::to_string(i) +
                       " has zero norm; a cosine similarity needs a non-zero embedding");
    }
    const double norm = std::sqrt(sum_sq);
    double* yi = y + i * D;
    for (int64_t k = 0; k < D; ++k) yi[k] = static_cast<double>(xi[k]) / norm;
  }
  return out;
}

float similarity_pair(const double* x_hat, const double* y_hat, int64_t D) {
  double t = 0.0;  // t_k = t_{k-1} + a_k * b_k, k ascending: the accumulator of similarity_tile
  for (int64_t k = 0; k < D; ++k) t += x_hat[k] * y_hat[k];
  return static_cast<float>(t);
}

torch::Tensor similarity_block(const torch::Tensor& q_hat, const torch::Tensor& p_hat) {
  check_normalised(q_hat, "q_hat");
  check_normalised(p_hat, "p_hat");
  const int64_t nq = q_hat.size(0);
  const int64_t nc = p_hat.size(0);
  const int64_t D = q_hat.size(1);
  if (p_hat.size(1) != D && nq > 0 && nc > 0) {
    throw InputError("negatives::similarity_block: width of p_hat " + std::to_string(p_hat.size(1)) +
                     " != width of q_hat " + std::to_string(D));
  }
  torch::Tensor out = torch::empty({nq, nc}, torch::TensorOptions().dtype(torch::kFloat));
  if (nq == 0 || nc == 0) return out;

  const torch::Tensor q = q_hat.contiguous();
  const torch::Tensor pt = p_hat.t().contiguous();  // [D, nc]: candidates of one k side by side
  const double* qd = q.data_ptr<double>();
  const double* ptd = pt.data_ptr<double>();
  float* od = out.data_ptr<float>();

  const int64_t q_tiles = (nq + kTileQ - 1) / kTileQ;
  const int64_t work_per_tile = std::max<int64_t>(1, kTileQ * nc * D);
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 18) / work_per_tile);
  at::parallel_for(0, q_tiles, grain, [&](int64_t tile_begin, int64_t tile_end) {
    for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
      const int64_t a0 = tile * kTileQ;
      const int64_t tq = std::min(kTileQ, nq - a0);
      for (int64_t c0 = 0; c0 < nc; c0 += kTileC) {
        const int64_t tc = std::min(kTileC, nc - c0);
        similarity_tile<kTileQ, kTileC>(qd + a0 * D, D, ptd, nc, c0, tq, tc, od + a0 * nc, nc);
      }
    }
  });
  return out;
}

}  // namespace adaptdiff::negatives
