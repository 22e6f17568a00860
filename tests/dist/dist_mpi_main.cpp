// main of dist_mpi: MPI via MpiEnvironment, then GoogleTest. Rank 0 prints the usual report; the
// other ranks print only their failures, prefixed "[rank N]". The exit code is non-zero on every rank if
// any rank had a failure.
#include <gtest/gtest.h>

#include <cstdio>

#include "dist/mpi_environment.hpp"
#include "mpi_world.hpp"

namespace {

const adaptdiff::dist::Comm* g_world = nullptr;  // set once in main before any test runs

class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_, result.file_name() ? result.file_name() : "?",
                 result.line_number(), result.summary());
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed()) {
      std::fprintf(stderr, "[rank %d] FAILED %s.%s\n", rank_, info.test_suite_name(), info.name());
    }
  }

 private:
  int rank_;
};

}  // namespace

const adaptdiff::dist::Comm& test_world() { return *g_world; }

int main(int argc, char** argv) {
  adaptdiff::dist::MpiEnvironment env(&argc, &argv);
  g_world = &env.world();
  ::testing::InitGoogleTest(&argc, argv);
  const int rank = env.world().rank();
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  const int rc = RUN_ALL_TESTS();
  const int64_t failed_ranks = env.world().allreduce(int64_t{rc != 0 ? 1 : 0}, adaptdiff::dist::ReduceOp::kSum);
  if (rank == 0 && failed_ranks > 0) {
    std::fprintf(stderr, "dist_mpi: %lld of %d ranks had failures\n", static_cast<long long>(failed_ranks),
                 env.world().size());
  }
  return failed_ranks > 0 ? 1 : 0;
}
