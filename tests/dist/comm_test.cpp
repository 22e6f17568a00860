// MPI tests of dist::Comm, dist::block_partition (run at 1, 2 and 3 ranks).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.hpp"
#include "dist/comm.hpp"
#include "dist/partition.hpp"
#include "mpi_world.hpp"

namespace {

using adaptdiff::CommError;
using adaptdiff::InputError;
using adaptdiff::dist::block_partition;
using adaptdiff::dist::Range;
using adaptdiff::dist::ReduceOp;

TEST(Comm, RankSizeAndReductions) {
  const auto& w = test_world();
  const int P = w.size(), r = w.rank();
  ASSERT_GE(P, 1);
  ASSERT_GE(r, 0);
  ASSERT_LT(r, P);
  EXPECT_EQ(w.allreduce(int64_t{r}, ReduceOp::kSum), int64_t{P} * (P - 1) / 2);
  EXPECT_EQ(w.allreduce(int64_t{r} + 10, ReduceOp::kMin), 10);
  EXPECT_EQ(w.allreduce(int64_t{r} + 10, ReduceOp::kMax), 10 + P - 1);
  EXPECT_EQ(w.allreduce(r, ReduceOp::kMax), P - 1);
  EXPECT_DOUBLE_EQ(w.allreduce(0.5 * (r + 1), ReduceOp::kSum), 0.25 * P * (P + 1));
  EXPECT_DOUBLE_EQ(w.allreduce(-1.5 * r, ReduceOp::kMin), -1.5 * (P - 1));
  const auto v = w.allreduce(std::vector<int64_t>{r, -r, 1}, ReduceOp::kSum);
  EXPECT_EQ(v, (std::vector<int64_t>{int64_t{P} * (P - 1) / 2, -int64_t{P} * (P - 1) / 2, P}));
  const auto d = w.allreduce(std::vector<double>{1.0 * r, 2.0}, ReduceOp::kMax);
  EXPECT_EQ(d, (std::vector<double>{1.0 * (P - 1), 2.0}));
  const auto g = w.allgather(int64_t{100} + r * r);
  ASSERT_EQ(g.size(), static_cast<size_t>(P));
  for (int k = 0; k < P; ++k) EXPECT_EQ(g[static_cast<size_t>(k)], 100 + k * k);
  w.barrier();
}

TEST(Comm, BroadcastBytesAndStrings) {
  const auto& w = test_world();
  const int root = w.size() - 1;
  const std::string text = w.rank() == root ? std::string("far-neg \0 payload", 17) : std::string("ignored");
  const std::string got = w.bcast(text, root);
  EXPECT_EQ(got, std::string("far-neg \0 payload", 17));
  std::vector<uint8_t> bytes;
  if (w.rank() == 0) bytes = {1, 2, 3, 250};
  w.bcast(bytes, 0);
  EXPECT_EQ(bytes, (std::vector<uint8_t>{1, 2, 3, 250}));
  std::vector<uint8_t> empty{9, 9};
  if (w.rank() == 0) empty.clear();
  w.bcast(empty, 0);
  EXPECT_TRUE(empty.empty());
}

TEST(Comm, SendrecvRingWithUnevenAndEmptyMessages) {
  const auto& w = test_world();
  const int P = w.size(), r = w.rank();
  const int next = (r + 1) % P, prev = (r - 1 + P) % P;
  // rank k sends k doubles (rank 0 sends nothing) with values 1000k + i.
  std::vector<double> send(static_cast<size_t>(r));
  for (int i = 0; i < r; ++i) send[static_cast<size_t>(i)] = 1000.0 * r + i;
  std::vector<double> recv(static_cast<size_t>(prev));
  w.sendrecv(send.data(), r, next, recv.data(), prev, prev);
  for (int i = 0; i < prev; ++i) EXPECT_EQ(recv[static_cast<size_t>(i)], 1000.0 * prev + i);
  std::vector<float> fsend(3, static_cast<float>(r) + 0.25f), frecv(3, -1.0f);
  w.sendrecv(fsend.data(), 3, next, frecv.data(), 3, prev, 5);
  for (float f : frecv) EXPECT_EQ(f, static_cast<float>(prev) + 0.25f);
}

TEST(Comm, SendrecvLengthMismatchIsCommError) {
  const auto& w = test_world();
  const int P = w.size(), r = w.rank();
  std::vector<float> send(2, 1.0f), recv(3, 0.0f);
  // Every rank expects 3 values but receives 2: the wrapper must notice (no MPI error is raised for it).
  try {
    w.sendrecv(send.data(), 2, (r + 1) % P, recv.data(), 3, (r - 1 + P) % P, 9);
    ADD_FAILURE() << "no CommError for a short message";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("expected 3"), std::string::npos) << e.what();
  }
  // Every rank expects 1 value but receives 2: MPI reports truncation and the wrapper names the call
  // (to itself, at one rank, Open MPI truncates silently and Comm checks the lengths instead).
  try {
    w.sendrecv(send.data(), 2, (r + 1) % P, recv.data(), 1, (r - 1 + P) % P, 10);
    ADD_FAILURE() << "no CommError for a truncated message";
  } catch (const CommError& e) {
    const std::string what = e.what();
    const std::string want = P > 1 ? "MPI_Sendrecv failed at src/dist/comm.cpp:" : "expected 1 elements";
    EXPECT_NE(what.find(want), std::string::npos) << what;
  }
  w.barrier();
}

TEST(Comm, SplitSharedGivesNodeLocalRanks) {
  const auto& w = test_world();
  // mpiexec in the tests runs on one node: the node communicator is the whole world.
  EXPECT_EQ(w.local_size(), w.size());
  EXPECT_EQ(w.local_rank(), w.rank());
  adaptdiff::dist::Comm node = w.split_shared();
  EXPECT_EQ(node.size(), w.size());
  EXPECT_EQ(node.local_size(), node.size());
  EXPECT_EQ(node.allreduce(int64_t{1}, ReduceOp::kSum), w.size());
  adaptdiff::dist::Comm moved = std::move(node);
  EXPECT_EQ(moved.allreduce(int64_t{2}, ReduceOp::kSum), 2 * w.size());
}

TEST(Partition, ExamplesAndErrors) {
  auto eq = [](Range a, int64_t b, int64_t e) { return a.begin == b && a.end == e; };
  EXPECT_TRUE(eq(block_partition(10, 0, 3), 0, 4));
  EXPECT_TRUE(eq(block_partition(10, 1, 3), 4, 7));
  EXPECT_TRUE(eq(block_partition(10, 2, 3), 7, 10));
  EXPECT_TRUE(eq(block_partition(2, 0, 3), 0, 1));
  EXPECT_TRUE(eq(block_partition(2, 1, 3), 1, 2));
  EXPECT_TRUE(eq(block_partition(2, 2, 3), 2, 2));
  EXPECT_TRUE(block_partition(2, 2, 3).empty());
  EXPECT_TRUE(eq(block_partition(0, 0, 1), 0, 0));
  EXPECT_THROW(block_partition(-1, 0, 1), InputError);
  EXPECT_THROW(block_partition(5, 3, 3), InputError);
  EXPECT_THROW(block_partition(5, 0, 0), InputError);
  EXPECT_THROW(block_partition(5, -1, 2), InputError);
}

TEST(Partition, PropertiesForManySizes) {
  for (int P = 1; P <= 7; ++P) {
    for (int64_t n = 0; n <= 23; ++n) {
      int64_t expect_begin = 0, smallest = n, largest = 0;
      for (int r = 0; r < P; ++r) {
        const Range range = block_partition(n, r, P);
        EXPECT_EQ(range.begin, expect_begin) << "n=" << n << " P=" << P << " r=" << r;
        EXPECT_GE(range.size(), 0);
        if (r > 0) {
          EXPECT_LE(range.size(), block_partition(n, r - 1, P).size());  // extras go first
        }
        smallest = std::min(smallest, range.size());
        largest = std::max(largest, range.size());
        expect_begin = range.end;
      }
      EXPECT_EQ(expect_begin, n);
      EXPECT_LE(largest - smallest, 1);
    }
  }
}

}  // namespace
