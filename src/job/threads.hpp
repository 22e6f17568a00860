#pragma once
// Threads of one rank: LibTorch's intra-op threads from the rank's share of the node, OpenBLAS pinned.
#include <cstdint>
#include <string>

namespace adaptdiff::job {

/// Intra-op threads for one rank: `configured` when > 0, else min(CPUs this process may run on,
/// cores of the node / ranks on the node), at least 1. `cores_on_node` <= 0 means "ask the OS".
int threads_per_rank(int64_t configured, int ranks_on_node, int cpus_allowed, int cores_on_node);

/// Sets OpenBLAS's own thread count (when OpenBLAS is the loaded BLAS) and returns the count now in
/// force, or 0 when no OpenBLAS is loaded. Used to keep results independent of launcher CPU binding.
int pin_blas_threads(int threads);

/// A warning when the launcher bound this rank to fewer CPUs than its share of the node (cores of the node /
/// ranks on the node, at least 1) — e.g. `mpiexec -n 1` binds the rank to one core —, naming the fix; "" when
/// the binding leaves the share usable or `cpus_allowed` is unknown (<= 0). `cores_on_node` <= 0: ask the OS.
std::string binding_warning(int ranks_on_node, int cpus_allowed, int cores_on_node);

/// CPUs this process may run on (its affinity mask), 0 when unknown.
int cpus_allowed();

}  // namespace adaptdiff::job
