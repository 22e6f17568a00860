// Work plan arithmetic: a fixed grid of global batches, independent of the rank count and of what is pending.
#include <gtest/gtest.h>

#include <algorithm>

#include "job/threads.hpp"
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

TEST(Plan, ResumeComputesWholeGridBatchesAndWritesOnlyPending) {
  // 12 samples in a grid of batches of 2: {0,1} {2,3} {4,5} {6,7} {8,9} {10,11}.
  const auto p = make_plan(4, 3, {1, 2, 7, 8, 11}, 2, {0}, {0.0}, 4);
  EXPECT_EQ(p.grid_batches, (std::vector<int64_t>{0, 1, 3, 4, 5}));
  EXPECT_EQ(p.batches, 5);
  EXPECT_EQ(p.batch_rows(0), (std::vector<int64_t>{0, 1}));  // computed whole...
  EXPECT_EQ(p.pending_rows(0), (std::vector<int64_t>{1}));   // ...written only where pending
  EXPECT_EQ(p.batch_rows(1), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(p.pending_rows(1), (std::vector<int64_t>{2}));
  EXPECT_EQ(p.batch_rows(2), (std::vector<int64_t>{6, 7}));
  EXPECT_EQ(p.batch_rows(4), (std::vector<int64_t>{10, 11}));
  EXPECT_EQ(p.pending_rows(4), (std::vector<int64_t>{11}));
  // 5 batches over 4 ranks: 2, 1, 1, 1; each rank writes only the pending samples of its batches.
  EXPECT_EQ(p.rank_batches[0].size(), 2);
  EXPECT_EQ(p.rounds(), 2);
  EXPECT_EQ(p.rank_samples(0), 2);  // 1 and 2
  EXPECT_EQ(p.rank_samples(1) + p.rank_samples(2) + p.rank_samples(3), 3);
  const auto done = make_plan(4, 3, {}, 2, {0}, {0.0}, 2);
  EXPECT_EQ(done.batches, 0);
  EXPECT_EQ(done.rounds(), 0);
  EXPECT_EQ(done.rank_samples(1), 0);
}

TEST(Plan, BatchOfASampleNeverDependsOnWhatIsPending) {
  // Brute force over every pending subset of 7 samples with B = 3: the batch that computes sample s is always
  // rows [3*(s/3), min(3*(s/3)+3, 7)), the same as in a fresh run.
  const int64_t n = 7, B = 3;
  const auto fresh = make_plan(7, 1, all_samples(n), B, {0}, {0.0}, 2);
  for (int mask = 1; mask < (1 << n); ++mask) {
    std::vector<int64_t> pending;
    for (int64_t s = 0; s < n; ++s) {
      if (mask & (1 << s)) pending.push_back(s);
    }
    for (int world = 1; world <= 3; ++world) {
      const auto p = make_plan(7, 1, pending, B, {0}, {0.0}, world);
      int64_t written = 0;
      for (int64_t j = 0; j < p.batches; ++j) {
        const auto rows = p.batch_rows(j);
        EXPECT_EQ(rows, fresh.batch_rows(rows.front() / B)) << "mask " << mask;
        for (int64_t s : p.pending_rows(j)) EXPECT_TRUE(std::find(rows.begin(), rows.end(), s) != rows.end());
        written += static_cast<int64_t>(p.pending_rows(j).size());
      }
      EXPECT_EQ(written, static_cast<int64_t>(pending.size()));
      int64_t by_rank = 0;
      for (int r = 0; r < world; ++r) by_rank += p.rank_samples(r);
      EXPECT_EQ(by_rank, static_cast<int64_t>(pending.size()));
    }
  }
}

TEST(Plan, ThreadsNeverOversubscribe) {
  using adaptdiff::job::threads_per_rank;
  EXPECT_EQ(threads_per_rank(0, 2, 16, 16), 8);   // 2 ranks share 16 cores
  EXPECT_EQ(threads_per_rank(0, 2, 1, 16), 1);    // launcher bound each rank to one core
  EXPECT_EQ(threads_per_rank(0, 4, 16, 2), 1);    // more ranks than cores: at least one
  EXPECT_EQ(threads_per_rank(3, 2, 16, 16), 3);   // configured
}

TEST(Plan, BindingToFewerCoresThanTheShareIsNamedWithTheFix) {
  using adaptdiff::job::binding_warning;
  const std::string w = binding_warning(1, 1, 2);  // mpiexec -n 1 on 2 cores: bound to one
  EXPECT_NE(w.find("1 CPU(s) but its share of the node is 2"), std::string::npos) << w;
  EXPECT_NE(w.find("--bind-to none"), std::string::npos) << w;
  EXPECT_NE(w.find("--cpus-per-task=2"), std::string::npos) << w;
  EXPECT_EQ(binding_warning(2, 1, 2), "");   // 2 ranks on 2 cores, one each: the share
  EXPECT_EQ(binding_warning(1, 2, 2), "");   // not bound
  EXPECT_EQ(binding_warning(4, 1, 2), "");   // oversubscribed: the share is 1
  EXPECT_EQ(binding_warning(1, 0, 2), "");   // affinity unknown
  EXPECT_NE(binding_warning(2, 4, 16), "");  // 8 each, bound to 4
}
