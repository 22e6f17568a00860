#include "job/threads.hpp"

#include <dlfcn.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>

namespace adaptdiff::job {

int threads_per_rank(int64_t configured, int ranks_on_node, int cpus_allowed, int cores_on_node) {
  if (configured > 0) return static_cast<int>(configured);
  if (cores_on_node <= 0) cores_on_node = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  const int share = std::max(1, cores_on_node / std::max(1, ranks_on_node));
  return std::max(1, std::min(cpus_allowed > 0 ? cpus_allowed : share, share));
}

std::string binding_warning(int ranks_on_node, int cpus_allowed, int cores_on_node) {
  if (cores_on_node <= 0) cores_on_node = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  const int share = std::max(1, cores_on_node / std::max(1, ranks_on_node));
  if (cpus_allowed <= 0 || cpus_allowed >= share) return "";
  return "this rank may run on " + std::to_string(cpus_allowed) + " CPU(s) but its share of the node is " +
         std::to_string(share) + " (" + std::to_string(cores_on_node) + " cores / " + std::to_string(ranks_on_node) +
         " rank(s)): the launcher bound it to fewer cores, so " + std::to_string(share - cpus_allowed) +
         " stay unused. Launch with `mpiexec --bind-to none` (Open MPI binds one-rank runs to one core) or, "
         "under Slurm, `srun --cpus-per-task=" + std::to_string(share) + "`";
}

int pin_blas_threads(int threads) {
  // OpenBLAS sizes its own thread pool from the CPU affinity at load time, independently of LibTorch;
  // how it splits a GEMM over threads changes the rounding of some rows. Pinning it makes results
  // independent of how the launcher binds ranks to cores.
  using SetFn = void (*)(int);
  using GetFn = int (*)();
  auto set = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  auto get = reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (set == nullptr || get == nullptr) return 0;
  set(threads);
  return get();
}

int cpus_allowed() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
  return CPU_COUNT(&set);
}

}  // namespace adaptdiff::job
