// Work plan arithmetic: global batches over the pending samples, independent of the rank count.
#include <gtest/gtest.h>

#include "job/job.hpp"
#include "job/plan.hpp"

using adaptdiff::job::all_samples;
using adaptdiff::job::make_plan;

TEST(Plan, BatchesIndependentOfRanks) {
  const auto p1 = make_plan(8, 4, all_samples(32), 5, {950, 900}, {0.05, 0.1}, 1);
  const auto p3 = make_plan(8, 4, all_samples(32), 5, {950, 900}, {0.05, 0.1}, 3);
  EXPECT_EQ(p1.batches, 7);  // ceil(32 / 5)
  for (int64_t b = 0; b < p1.batches; ++b) EXPECT_EQ(p1.batch_rows(b), p3.batch_rows(b));
  EXPECT_EQ(p1.batch_rows(6), (std::vector<int64_t>{30, 31}));  // short last batch (padded when sampled)
  EXPECT_EQ(p3.rank_batches[0].size() + p3.rank_batches[1].size() + p3.rank_batches[2].size(), 7);
  EXPECT_EQ(p3.rounds(), 3);
  EXPECT_EQ(p3.rank_samples(0) + p3.rank_samples(1) + p3.rank_samples(2), 32);
  EXPECT_EQ(p3.rank_samples(2), 5 + 2);
  EXPECT_EQ(p1.rows_per_batch(), 5 * 2 * 2);
  const auto unguided = make_plan(8, 4, all_samples(32), 5, {950, 900}, {0.0, 0.1}, 1);
  EXPECT_EQ(unguided.rows_per_batch(), 5 + 10);
}

TEST(Plan, ResumeBatchesOnlyPendingSamples) {
  const auto p = make_plan(4, 3, {1, 2, 7, 8, 11}, 2, {0}, {0.0}, 4);
  EXPECT_EQ(p.batches, 3);
  EXPECT_EQ(p.batch_rows(0), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(p.batch_rows(1), (std::vector<int64_t>{7, 8}));
  EXPECT_EQ(p.batch_rows(2), (std::vector<int64_t>{11}));
  EXPECT_EQ(p.rank_batches[3].size(), 0);  // more ranks than batches: an empty share, still one round each
  EXPECT_EQ(p.rounds(), 1);
  const auto done = make_plan(4, 3, {}, 2, {0}, {0.0}, 2);
  EXPECT_EQ(done.batches, 0);
  EXPECT_EQ(done.rounds(), 0);
}

TEST(Plan, ThreadsNeverOversubscribe) {
  using adaptdiff::job::threads_per_rank;
  EXPECT_EQ(threads_per_rank(0, 2, 16, 16), 8);   // 2 ranks share 16 cores
  EXPECT_EQ(threads_per_rank(0, 2, 1, 16), 1);    // launcher bound each rank to one core
  EXPECT_EQ(threads_per_rank(0, 4, 16, 2), 1);    // more ranks than cores: at least one
  EXPECT_EQ(threads_per_rank(3, 2, 16, 16), 3);   // configured
}
