#pragma once
// Negative-condition strategies of NegFaceDiff guidance and their names in configuration files.
//
// For each identity p+ the sampler needs a negative condition p-. The strategies are
//   far    : the candidate with the lowest cosine similarity to p+ (NegFaceDiff "Far-Neg", `fc`)
//   close  : the candidate with the highest cosine similarity to p+
//   median : the pool row at position n/2 of the similarity ranking of all n rows (upstream's definition)
//   random : a seeded pseudo-random candidate
//   previous: the previous identity, i - 1 (identity 0 takes the last; upstream's "rand")
//   zero   : the all-zero 512-vector (no pool row; index -1)
//   none   : no negative at all (no pool row; index -1)
// The exact definitions (similarity, ties, median position, random hash) are in similarity.hpp and
// selection.hpp. Ref: NegFaceDiff sampler, see ../shared/docs/idiff-face-model.md ("Negative context").
#include <cstdint>
#include <string>

namespace adaptdiff::negatives {

/// How the negative condition of an identity is chosen.
enum class Strategy { kFar, kClose, kMedian, kRandom, kPrevious, kZero, kNone };

/// Parses a strategy name: "far" | "close" | "median" | "random" | "previous" | "zero" | "none" (exact, lower
/// case).
/// Throws adaptdiff::ConfigError naming the bad value and listing the valid names.
Strategy parse_strategy(const std::string& name);

/// The configuration name of `strategy` (the inverse of parse_strategy), e.g. "far".
const char* to_string(Strategy strategy);

/// True for the strategies whose choice depends on cosine similarities (far, close, median).
bool uses_similarity_ranking(Strategy strategy);

/// True for the strategies that pick a row of the candidate pool (far, close, median, random, previous);
/// false for zero and none, whose negative index is always -1.
bool picks_pool_row(Strategy strategy);

/// The strategy's part of a run's fingerprint: "strategy=<name>" (median: "strategy=median;position=n/2", the
/// definition since layout 3 files, so files made with the earlier definition are not resumed), then ";pool=<pool>" when it picks pool rows
/// and `pool` (an identity of a separate candidate file) is not empty, then ";seed=<seed>" when it reads
/// negatives.seed (random).
std::string fingerprint(Strategy strategy, uint64_t seed, const std::string& pool);

}  // namespace adaptdiff::negatives
