#pragma once
// Independent reference for the negative-selection tests: plain loops over std::vector, written from the
// definitions in src/negatives/similarity.hpp and selection.hpp only (no torch math, no library code).
// Also deterministic test data (random rows, exact duplicates and power-of-two multiples -> exact ties).
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace brute {

using Matrix = std::vector<std::vector<float>>;

struct Expected {
  std::vector<int64_t> index;
  std::vector<float> similarity;
};

// float64 norm with the sum taken k = 0..D-1, then a division per element.
inline std::vector<double> normalised(const std::vector<float>& x) {
  double sum = 0.0;
  for (float v : x) sum += static_cast<double>(v) * static_cast<double>(v);
  const double norm = std::sqrt(sum);
  std::vector<double> y(x.size());
  for (size_t k = 0; k < x.size(); ++k) y[k] = static_cast<double>(x[k]) / norm;
  return y;
}

inline float cosine(const std::vector<float>& a, const std::vector<float>& b) {
  const std::vector<double> ah = normalised(a), bh = normalised(b);
  double dot = 0.0;
  for (size_t k = 0; k < ah.size(); ++k) dot += ah[k] * bh[k];
  return static_cast<float>(dot);
}

// SplitMix64 as a stateful generator: advance the state k times, return the k-th output.
inline uint64_t splitmix_kth_output(uint64_t seed, uint64_t k) {
  uint64_t state = seed;
  uint64_t out = 0;
  for (uint64_t step = 0; step < k; ++step) {
    state += 0x9E3779B97F4A7C15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    out = z ^ (z >> 31);
  }
  return out;
}

// Negatives of identities[first, first + count) against `pool` (== identities when pool_is_identity).
inline Expected select(const Matrix& identities, const Matrix& pool, bool pool_is_identity, const std::string& strategy,
                       uint64_t seed, int64_t first, int64_t count) {
  Expected out;
  const auto n = static_cast<int64_t>(pool.size());
  for (int64_t i = first; i < first + count; ++i) {
    const auto& q = identities[static_cast<size_t>(i)];
    if (strategy == "zero" || strategy == "none") {
      out.index.push_back(-1);
      out.similarity.push_back(std::nanf(""));
      continue;
    }
    std::vector<std::pair<float, int64_t>> cands;  // candidates in ascending index order
    for (int64_t j = 0; j < n; ++j) {
      if (pool_is_identity && j == i) continue;
      cands.emplace_back(cosine(q, pool[static_cast<size_t>(j)]), j);
    }
    int64_t pick = -1;
    if (strategy == "far" || strategy == "close") {
      float best = 0.0f;
      for (const auto& [s, j] : cands) {  // strict comparison: the first (lowest) index wins ties
        if (pick < 0 || (strategy == "far" ? s < best : s > best)) {
          best = s;
          pick = j;
        }
      }
    } else if (strategy == "median") {  // upstream: argsort(cos)[n // 2] over all n pool rows, self included
      std::vector<std::pair<float, int64_t>> all;
      for (int64_t j = 0; j < n; ++j) all.emplace_back(cosine(q, pool[static_cast<size_t>(j)]), j);
      std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
        return a.first < b.first || (a.first == b.first && a.second < b.second);
      });
      pick = all[static_cast<size_t>(n / 2)].second;
    } else if (strategy == "previous") {  // upstream's "rand": the previous identity, 0 takes the last
      pick = ((i - 1) % n + n) % n;
    } else if (strategy == "random") {
      const uint64_t h = splitmix_kth_output(seed, static_cast<uint64_t>(i) + 1);
      const auto r = static_cast<size_t>((static_cast<unsigned __int128>(h) * cands.size()) >> 64);
      pick = cands[r].second;  // the r-th candidate in ascending index order
    }
    out.index.push_back(pick);
    out.similarity.push_back(cosine(q, pool[static_cast<size_t>(pick)]));
  }
  return out;
}

// Random normal rows; then rows copied exactly and multiplied by 2 or 0.5 (exact in float32, so the
// cosines tie exactly).
inline Matrix random_rows(int64_t n, int64_t dim, uint64_t seed, bool with_duplicates) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Matrix m(static_cast<size_t>(n), std::vector<float>(static_cast<size_t>(dim)));
  for (auto& row : m)
    for (auto& v : row) v = normal(rng);
  if (with_duplicates && n >= 3) {
    for (int64_t t = 0; t < n / 3; ++t) {
      const auto src = static_cast<size_t>(rng() % static_cast<uint64_t>(n));
      const auto dst = static_cast<size_t>(rng() % static_cast<uint64_t>(n));
      const float scale = (t % 3 == 0) ? 1.0f : (t % 3 == 1 ? 2.0f : 0.5f);
      for (int64_t k = 0; k < dim; ++k) m[dst][static_cast<size_t>(k)] = scale * m[src][static_cast<size_t>(k)];
    }
  }
  return m;
}

// Rows with entries in {-1, 0, 1} and a small width: many exactly equal cosines between distinct rows.
inline Matrix small_int_rows(int64_t n, int64_t dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Matrix m(static_cast<size_t>(n), std::vector<float>(static_cast<size_t>(dim)));
  for (auto& row : m) {
    bool nonzero = false;
    for (auto& v : row) {
      v = static_cast<float>(static_cast<int>(rng() % 3) - 1);
      nonzero = nonzero || v != 0.0f;
    }
    if (!nonzero) row[0] = 1.0f;
  }
  return m;
}

// Rows [begin, end) as a [end - begin, D] float32 tensor (D = width of row 0, or `dim` when empty).
inline torch::Tensor to_tensor(const Matrix& m, int64_t begin, int64_t end, int64_t dim) {
  torch::Tensor t = torch::empty({end - begin, dim}, torch::TensorOptions().dtype(torch::kFloat));
  float* p = t.data_ptr<float>();
  for (int64_t i = begin; i < end; ++i) {
    std::memcpy(p + (i - begin) * dim, m[static_cast<size_t>(i)].data(), sizeof(float) * static_cast<size_t>(dim));
  }
  return t;
}

inline uint32_t bits(float v) {
  uint32_t u = 0;
  std::memcpy(&u, &v, sizeof u);
  return u;
}

// Bit equality, with any NaN equal to any NaN.
inline bool same_float(float a, float b) { return (std::isnan(a) && std::isnan(b)) || bits(a) == bits(b); }

}  // namespace brute
