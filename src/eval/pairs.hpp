#pragma once
// The comparison pairs of an identity-separability evaluation: every genuine pair (i < j, same identity) and
// every impostor pair (i < j, different identities) or a seeded random subset of the impostor pairs drawn
// without replacement. Pure functions of the identity labels and the seed: the same pairs, in the same
// canonical order (ascending (i, j)), on every rank and for any rank count.
#include <cstdint>
#include <utility>
#include <vector>

namespace adaptdiff::eval {

using Pair = std::pair<int64_t, int64_t>;  ///< rows (i, j), i < j

/// The pairs to score.
struct PairPlan {
  std::vector<Pair> genuine;           ///< all genuine pairs, ascending (i, j)
  bool all_impostors = true;           ///< true: every impostor pair, enumerated implicitly (see impostor_at)
  std::vector<Pair> impostor;          ///< the sampled impostor pairs, ascending (i, j) (all_impostors false)
  std::vector<int64_t> row_offset;     ///< all_impostors: impostor pairs (i, .) are [row_offset[i], row_offset[i+1])
  int64_t n_impostor = 0;              ///< impostor pairs to score
  int64_t total_impostor_pairs = 0;    ///< impostor pairs that exist
  int64_t single_image_identities = 0; ///< identities with one image (no genuine pair; still impostors)
  int64_t identities = 0;              ///< distinct identity labels
};

/// The most impostor pairs scored when all of them are asked for (8 bytes each on every rank).
inline constexpr int64_t kMaxAllImpostorPairs = 200'000'000;

/// Plans the pairs of `identity` (int64 labels of N rows, any values). requested_impostors: 0 = all impostor
/// pairs; otherwise that many distinct impostor pairs drawn with `seed` (all of them when requested >= the
/// total). Sampling: mt19937_64(seed); while fewer than requested, draw rows i, j uniformly (unbiased rejection
/// from the 64-bit output) and keep {min, max} when i != j, the identities differ and the pair is new; when more
/// than half of all impostor pairs are requested, Knuth's selection sampling (Algorithm S) over the canonical
/// order instead. Result sorted ascending.
/// Throws InputError when there are fewer than 2 identities or no genuine pair at all, requested < 0, or all
/// impostor pairs are asked for and there are more than kMaxAllImpostorPairs.
PairPlan plan_pairs(const std::vector<int64_t>& identity, int64_t requested_impostors, uint64_t seed);

/// Uniform integer in [0, n) from mt19937_64-compatible 64-bit draws `next()` by rejection (no modulo bias);
/// the same sequence on every platform (std::uniform_int_distribution is implementation-defined).
template <class Engine>
uint64_t uniform_below(Engine& engine, uint64_t n) {
  const uint64_t limit = (~uint64_t{0} / n) * n;  // largest multiple of n <= 2^64 - 1
  for (;;) {
    const uint64_t r = engine();
    if (r < limit) return r % n;
  }
}

}  // namespace adaptdiff::eval
