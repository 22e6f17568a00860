// eval under mpiexec with 1, 2 and 3 ranks: the distributed scores are, bit for bit, the brute-force scores in
// canonical pair order (all pairs and a sampled subset), and the distributed embedding pass of a sampling output
// gives the model's closed-form embeddings of exactly the done samples.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <filesystem>

#include "dist/comm.hpp"
#include "eval/embed.hpp"
#include "eval/pairs.hpp"
#include "eval/scores.hpp"
#include "fixture.hpp"

namespace {

namespace eval = adaptdiff::eval;
namespace fs = std::filesystem;

const adaptdiff::dist::Comm& world() {
  static const adaptdiff::dist::Comm comm(MPI_COMM_WORLD, false);
  return comm;
}

std::string shared_dir(const std::string& name) {
  int pid = world().rank() == 0 ? static_cast<int>(::getpid()) : 0;
  MPI_Bcast(&pid, 1, MPI_INT, 0, MPI_COMM_WORLD);
  const fs::path dir = fs::temp_directory_path() / ("adaptdiff_eval_" + std::to_string(pid) + "_" + name);
  if (world().rank() == 0) fs::create_directories(dir);
  world().barrier();
  return dir.string();
}

// Scores of every pair, one at a time, in the order (i, j) ascending: the definition, not the library's loops.
void brute_scores(const torch::Tensor& e, const std::vector<int64_t>& id, std::vector<double>& gen,
                  std::vector<double>& imp) {
  const torch::Tensor x = e.to(torch::kFloat64);
  const int64_t n = x.size(0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i + 1; j < n; ++j) {
      double dot = 0, ni = 0, nj = 0;
      for (int64_t d = 0; d < x.size(1); ++d) {
        const double a = x[i][d].item<double>(), b = x[j][d].item<double>();
        dot += a * b;
        ni += a * a;
        nj += b * b;
      }
      (id[i] == id[j] ? gen : imp).push_back(dot / (std::sqrt(ni) * std::sqrt(nj)));
    }
  }
}

TEST(EvalMpi, DistributedScoresAreTheBruteForceScoresInCanonicalOrder) {
  torch::manual_seed(3);
  const torch::Tensor e = torch::randn({23, 5});
  std::vector<int64_t> id;
  for (int k = 0; k < 23; ++k) id.push_back((k * 7) % 6);
  std::vector<double> gen, imp;
  brute_scores(e, id, gen, imp);
  const eval::ScoreSet all = eval::score_pairs(world(), e, id, eval::plan_pairs(id, 0, 0));
  EXPECT_EQ(all.genuine, gen);
  EXPECT_EQ(all.impostor, imp);

  const eval::PairPlan plan = eval::plan_pairs(id, 40, 11);
  const eval::ScoreSet some = eval::score_pairs(world(), e, id, plan);
  ASSERT_EQ(some.impostor.size(), 40u);
  const eval::CosineScorer one(e);
  for (size_t p = 0; p < plan.impostor.size(); ++p) {
    EXPECT_EQ(some.impostor[p], one(plan.impostor[p].first, plan.impostor[p].second)) << "pair " << p;
  }
}

TEST(EvalMpi, EmbeddingPassGivesTheModelsEmbeddingsOfTheDoneSamples) {
  const std::string dir = shared_dir("embed");
  const torch::Tensor images = adaptdiff::test::make_store_fixture(world(), dir + "/data.h5", 5, 3, 112, 4, 21);
  if (world().rank() == 0) adaptdiff::test::make_fr_model(dir + "/fr.pt");
  world().barrier();
  for (bool bgr : {false, true}) {
    eval::EmbedOptions opts;
    opts.model_path = dir + "/fr.pt";
    opts.batch_size = 2;
    opts.device = "cpu";
    opts.bgr = bgr;
    const eval::Embedded got = eval::embed_store(world(), dir + "/data.h5", opts);
    // Rows 0, 4, 8, 12 are holes: 11 of 15 done.
    const torch::Tensor done = torch::tensor(std::vector<int64_t>{1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14});
    EXPECT_EQ(got.rows, 15);
    EXPECT_EQ(got.skipped, 4);
    EXPECT_TRUE(torch::equal(got.identity, done.div(3, "floor")));
    const torch::Tensor want = adaptdiff::test::fr_model_reference(images.index_select(0, done), bgr);
    ASSERT_EQ(got.embeddings.sizes(), want.sizes());
    EXPECT_LT((got.embeddings.to(torch::kFloat64) - want).abs().max().item<double>(), 1e-5) << "bgr " << bgr;
  }
  world().barrier();
  if (world().rank() == 0) fs::remove_all(dir);
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (world().rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int result = RUN_ALL_TESTS();
  int worst = 0;
  MPI_Allreduce(&result, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
