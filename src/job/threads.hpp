#pragma once
// Threads of one rank: LibTorch's intra-op threads from the rank's share of the node, OpenBLAS pinned.
#include <cstdint>

namespace adaptdiff::job {

/// Intra-op threads for one rank: `configured` when > 0, else min(CPUs this process may run on,
/// cores of the node / ranks on the node), at least 1. `cores_on_node` <= 0 means "ask the OS".
int threads_per_rank(int64_t configured, int ranks_on_node, int cpus_allowed, int cores_on_node);

/// Sets OpenBLAS's own thread count (when OpenBLAS is the loaded BLAS) and returns the count now in
/// force, or 0 when no OpenBLAS is loaded. Used to keep results independent of launcher CPU binding.
int pin_blas_threads(int threads);

/// CPUs this process may run on (its affinity mask), 0 when unknown.
int cpus_allowed();

}  // namespace adaptdiff::job
