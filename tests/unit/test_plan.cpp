// Work plan arithmetic: block partition and global batches that do not depend on the rank count.
#include <gtest/gtest.h>

#include "job/job.hpp"
#include "job/plan.hpp"

using adaptdiff::job::make_plan;

TEST(Plan, BatchesIndependentOfRanks) {
  const auto p1 = make_plan(8, 4, 5, 1000, true, {950, 900}, {0.05, 0.1}, 1);
  const auto p3 = make_plan(8, 4, 5, 1000, true, {950, 900}, {0.05, 0.1}, 3);
  EXPECT_EQ(p1.batches, 7);  // ceil(32 / 5)
  for (int64_t b = 0; b < p1.batches; ++b) {
    EXPECT_EQ(p1.batch_samples(b).begin, p3.batch_samples(b).begin);
    EXPECT_EQ(p1.batch_samples(b).end, p3.batch_samples(b).end);
  }
  EXPECT_EQ(p1.batch_samples(6).size(), 2);  // short last batch (padded when sampled)
  EXPECT_EQ(p3.rank_batches[0].size() + p3.rank_batches[1].size() + p3.rank_batches[2].size(), 7);
  EXPECT_EQ(p1.rows_per_batch(), 5 * 2 * 2);
  const auto unguided = make_plan(8, 4, 5, 1000, true, {950, 900}, {0.0, 0.1}, 1);
  EXPECT_EQ(unguided.rows_per_batch(), 5 + 10);
}

TEST(Plan, ThreadsNeverOversubscribe) {
  using adaptdiff::job::threads_per_rank;
  EXPECT_EQ(threads_per_rank(0, 2, 16, 16), 8);   // 2 ranks share 16 cores
  EXPECT_EQ(threads_per_rank(0, 2, 1, 16), 1);    // launcher bound each rank to one core
  EXPECT_EQ(threads_per_rank(0, 4, 16, 2), 1);    // more ranks than cores: at least one
  EXPECT_EQ(threads_per_rank(3, 2, 16, 16), 3);   // configured
}
