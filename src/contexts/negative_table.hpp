#pragma once
// `adaptdiff-contexts negatives`: the negative identity of every identity of an identity file, chosen by the
// sampling job's own distributed selection (dist::select_negatives_distributed), as a table.
#include <torch/types.h>

#include <cstdint>
#include <string>

#include "dist/comm.hpp"
#include "io/identities.hpp"
#include "negatives/strategy.hpp"

namespace adaptdiff::contexts {

/// The negatives of identities 0..N-1 of one identity set (the pool is the set itself).
struct NegativeTable {
  torch::Tensor negative_index;       ///< [N] int64: pool row of p- (-1 for zero/none)
  torch::Tensor negative_similarity;  ///< [N] float32: cosine similarity of p+ and p- (NaN for zero/none)
};

/// Collective over `comm`. Each rank reads its block of rows of `identities` (width `width`), then all ranks
/// run the distributed selection with `strategy` (and `seed` for random); the table is returned whole on
/// every rank. Equal for any rank count (the selection is exact; see negatives/selection.hpp).
/// Throws InputError on every rank for bad input (a missing or unreadable file, NaN/zero rows, fewer than 2
/// identities for a strategy that picks a row), CommError on an MPI failure.
NegativeTable select_negative_table(const dist::Comm& comm, const io::ContextSource& identities,
                                    negatives::Strategy strategy, uint64_t seed, int64_t width,
                                    int64_t block_rows = 1024);

/// "similarity min / median / max: a / b / c" over the finite values of `similarity` ([N] float32; the median
/// is the lower one, position (n-1)/2 of the sorted values), or "similarity: none" when none is finite.
std::string similarity_summary(const torch::Tensor& similarity);

}  // namespace adaptdiff::contexts
