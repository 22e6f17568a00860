#include "dist/partition.hpp"

#include <algorithm>
#include <string>

#include "core/error.hpp"

namespace adaptdiff::dist {

Range block_partition(int64_t n, int rank, int world_size) {
  if (n < 0 || world_size < 1 || rank < 0 || rank >= world_size) {
    throw InputError("dist::block_partition: need n >= 0 and 0 <= rank < world_size, got n = " + std::to_string(n) +
                     ", rank = " + std::to_string(rank) + ", world_size = " + std::to_string(world_size));
  }
  const int64_t base = n / world_size;
  const int64_t extra = n % world_size;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return Range{begin, begin + base + (rank < extra ? 1 : 0)};
}

}  // namespace adaptdiff::dist
