#pragma once
// Contiguous block partition of n items over the ranks of a communicator (identities, pool rows, ...).
#include <cstdint>

namespace adaptdiff::dist {

/// Half-open range [begin, end) of global item indices.
struct Range {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
  bool empty() const { return end <= begin; }
};

/// The items of `rank` when n items are split into world_size contiguous blocks in rank order:
/// sizes are floor(n / world_size) or one more, the first n % world_size ranks get the extra item,
/// so begin(rank) = rank * floor(n/P) + min(rank, n % P). With n < world_size the last ranks get empty
/// ranges (begin == end == n). Throws InputError if n < 0, world_size < 1 or rank outside [0, world_size).
Range block_partition(int64_t n, int rank, int world_size);

}  // namespace adaptdiff::dist
