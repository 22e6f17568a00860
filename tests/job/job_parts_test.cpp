// The sampling job's parts, each on its own: the fingerprint (which part differs), the progress record
// (checksums and the pending samples of a file with holes and a torn sample), the output lock, and the
// compute batch size of a resume. Runs under mpiexec with 1 and 2 ranks (the record check is collective).
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "config/run_config.hpp"
#include "core/error.hpp"
#include "dist/comm.hpp"
#include "support/expect_error.hpp"
#include "io/store.hpp"
#include "job/fingerprint.hpp"
#include "job/output_file.hpp"
#include "job/record.hpp"

namespace fs = std::filesystem;
namespace job = adaptdiff::job;
namespace io = adaptdiff::io;
using adaptdiff::ConfigError;
using adaptdiff::IoError;
using adaptdiff::test::expect_error;

namespace {

const adaptdiff::dist::Comm& world() {
  static const adaptdiff::dist::Comm comm(MPI_COMM_WORLD, false);
  return comm;
}

// A folder every rank of this node shares (rank 0's pid names it).
std::string shared_dir(const std::string& name) {
  int pid = world().rank() == 0 ? static_cast<int>(::getpid()) : 0;
  MPI_Bcast(&pid, 1, MPI_INT, 0, MPI_COMM_WORLD);
  const fs::path dir = fs::temp_directory_path() / ("adaptdiff_job_" + std::to_string(pid) + "_" + name);
  if (world().rank() == 0) fs::create_directories(dir);
  world().barrier();
  return dir.string();
}

adaptdiff::config::RunConfig config_with(const std::string& dir, const std::vector<std::string>& sets) {
  const std::string path = dir + "/run.toml";
  if (world().rank() == 0) {
    std::ofstream(path) << "[model]\narchitecture = \"" << ADAPTDIFF_SOURCE_DIR
                        << "/configs/models/tiny.toml\"\ninit = \"random\"\n"
                        << "[identities]\ncount = 4\nimages_per_identity = 3\n[output]\npath = \"out.h5\"\n";
  }
  world().barrier();
  return adaptdiff::config::load_run_config(path, sets);
}

std::map<std::string, std::string> attributes_of(const adaptdiff::config::RunConfig& cfg) {
  job::ModelBundle mb;
  mb.architecture = "tiny";
  mb.image_height = mb.image_width = 8;
  io::ContextSource ids;
  ids.kind = io::ContextSource::kSyntheticUniform;
  ids.seed = static_cast<uint64_t>(cfg.identities.seed);
  const auto guidance = adaptdiff::sampler::make_guidance_schedule(cfg.guidance.schedule, cfg.guidance.params);
  return job::run_attributes(cfg, ids, nullptr, mb, *guidance);
}

// The fingerprint keys whose values differ between a and b.
std::vector<std::string> differing_parts(const std::map<std::string, std::string>& a,
                                         const std::map<std::string, std::string>& b) {
  std::vector<std::string> out;
  for (const auto& [k, v] : a) {
    if (k.rfind("fingerprint.", 0) == 0 && b.at(k) != v) out.push_back(k);
  }
  return out;
}

TEST(Fingerprint, EachSettingChangesOnlyItsPart) {
  const std::string dir = shared_dir("fingerprint");
  const auto base = attributes_of(config_with(dir, {}));
  using V = std::vector<std::string>;
  EXPECT_EQ(differing_parts(base, attributes_of(config_with(dir, {"guidance.w_max=0.5"}))),
            V{"fingerprint.guidance"});
  EXPECT_EQ(differing_parts(base, attributes_of(config_with(dir, {"run.seed=1"}))), V{"fingerprint.seed"});
  EXPECT_EQ(differing_parts(base, attributes_of(config_with(dir, {"negatives.strategy=\"close\""}))),
            V{"fingerprint.negatives"});
  EXPECT_EQ(differing_parts(base, attributes_of(config_with(dir, {"identities.count=5"}))),
            V{"fingerprint.identities"});
  // Settings that do not change the samples are not part of it.
  EXPECT_EQ(differing_parts(base, attributes_of(config_with(dir, {"run.batch_size=7", "run.threads=1"}))), V{});
  // w is not read by the linear schedule: not in its fingerprint.
  EXPECT_EQ(differing_parts(base, attributes_of(config_with(dir, {"guidance.w=0.9"}))), V{});
  EXPECT_EQ(base.at(job::kLayoutVersion), job::kLayoutVersionValue);
}

TEST(Fingerprint, CheckSameRunNamesTheDifferingPartAndReturnsTheBatchSize) {
  const std::string dir = shared_dir("same_run");
  auto attrs = attributes_of(config_with(dir, {}));
  attrs[job::kComputeBatchSize] = "5";
  const std::string path = dir + "/out.h5";
  io::StoreLayout l;
  l.identities = 2;
  l.images_per_identity = 2;
  l.height = l.width = 2;
  l.context_dim = 4;
  { io::OutputStore::create(world(), path, l, attrs).close(); }
  const auto other = attributes_of(config_with(dir, {"guidance.w_max=0.25"}));  // collective (barrier)
  if (world().rank() == 0) {
    EXPECT_EQ(job::check_same_run(path, attrs, true), 5);
    expect_error<ConfigError>([&] { job::check_same_run(path, other, true); },
                          {"different run", "guidance: stored 'schedule=linear;w_max=1', this run "
                                            "'schedule=linear;w_max=0.25'", "--force-new"});
    expect_error<IoError>([&] { job::check_same_run(dir + "/run.toml", attrs, true); }, {"cannot be resumed"});
  }
  world().barrier();
}

TEST(Record, ChecksumCoversEveryPartOfTheSample) {
  const torch::Tensor image = torch::arange(12, torch::kUInt8).view({2, 2, 3});
  const int64_t base = job::sample_checksum(image, 3, 1, 4);
  EXPECT_NE(base, 0);
  EXPECT_EQ(job::sample_checksum(image.clone(), 3, 1, 4), base);
  torch::Tensor flipped = image.clone();
  flipped[1][1][2] = 255;
  EXPECT_NE(job::sample_checksum(flipped, 3, 1, 4), base);
  EXPECT_NE(job::sample_checksum(image, 2, 1, 4), base);   // identity
  EXPECT_NE(job::sample_checksum(image, 3, 0, 4), base);   // sample_index
  EXPECT_NE(job::sample_checksum(image, 3, 1, 5), base);   // compute batch size
  const torch::Tensor latent = torch::zeros({3, 2, 2});
  EXPECT_NE(job::sample_checksum(image, 3, 1, 4, latent), base);
  EXPECT_TRUE(job::is_done(base));
  EXPECT_FALSE(job::is_done(0));
}

TEST(Record, PendingSamplesAreTheHolesAndTheTornOnes) {
  const std::string dir = shared_dir("pending");
  io::StoreLayout l;
  l.identities = 3;
  l.images_per_identity = 3;  // 9 samples
  l.height = l.width = 2;
  l.context_dim = 4;
  auto store = io::OutputStore::create(world(), dir + "/out.h5", l, {});
  if (world().rank() == 0) {
    // Done: 0, 1, 4, 5, 8; 5 then gets a torn image (its bytes change after the record was written).
    for (int64_t s : {0, 1, 4, 5, 8}) {
      const torch::Tensor image = torch::full({1, 2, 2, 3}, s, torch::kUInt8);
      store.write_images(s, image);
      store.write_samples_labels(s, torch::full({1}, s / 3, torch::kInt64), torch::full({1}, s % 3, torch::kInt64));
      store.write_compute_batch_sizes(s, torch::full({1}, 3, torch::kInt64));
      store.write_checksums(s, torch::full({1}, job::sample_checksum(image[0], s / 3, s % 3, 3), torch::kInt64));
    }
    store.write_images(5, torch::full({1, 2, 2, 3}, 99, torch::kUInt8));
  }
  store.flush();
  EXPECT_EQ(job::pending_samples(world(), store, 9, false), (std::vector<int64_t>{2, 3, 5, 6, 7}));
  store.close();
}

TEST(Record, OnlySamplesWithoutADurableMarkAreReadBack) {
  // Samples 0..5 done; 0, 1, 2 marked durable after a flush. Then images 1 (marked) and 4 (unmarked) change:
  // only the unmarked one is read back and found torn (a marked sample was on disk at a completed checkpoint,
  // so it is trusted without reading it); 6..8 were never done.
  const std::string dir = shared_dir("durable");
  io::StoreLayout l;
  l.identities = 3;
  l.images_per_identity = 3;
  l.height = l.width = 2;
  l.context_dim = 4;
  auto store = io::OutputStore::create(world(), dir + "/out.h5", l, {});
  ASSERT_TRUE(store.has_dataset(io::store_dataset::kSampleDurable));
  std::vector<int64_t> recorded;
  if (world().rank() == 0) {
    for (int64_t s = 0; s < 6; ++s) {
      const torch::Tensor image = torch::full({1, 2, 2, 3}, s, torch::kUInt8);
      store.write_images(s, image);
      store.write_samples_labels(s, torch::full({1}, s / 3, torch::kInt64), torch::full({1}, s % 3, torch::kInt64));
      store.write_compute_batch_sizes(s, torch::full({1}, 3, torch::kInt64));
      store.write_checksums(s, torch::full({1}, job::sample_checksum(image[0], s / 3, s % 3, 3), torch::kInt64));
    }
    recorded = {2, 0, 1};  // any order
  }
  store.flush();
  job::mark_durable(store, recorded);
  EXPECT_TRUE(recorded.empty());
  if (world().rank() == 0) {
    store.write_images(1, torch::full({1, 2, 2, 3}, 99, torch::kUInt8));
    store.write_images(4, torch::full({1, 2, 2, 3}, 99, torch::kUInt8));
  }
  store.flush();
  const torch::Tensor marks = store.read_rows(io::store_dataset::kSampleDurable, 0, 9);
  EXPECT_TRUE(torch::equal(marks, torch::tensor({1, 1, 1, 0, 0, 0, 0, 0, 0}, torch::kUInt8)));
  EXPECT_EQ(job::pending_samples(world(), store, 9, false), (std::vector<int64_t>{4, 6, 7, 8}));
  store.close();
}

TEST(OutputFile, SecondWriterIsRefused) {
  if (world().rank() != 0) return;
  const std::string path = fs::temp_directory_path() / ("adaptdiff_lock_" + std::to_string(::getpid()) + ".h5");
  job::RunLock first;
  first.acquire(path);
  job::RunLock second;
  expect_error<IoError>([&] { second.acquire(path); }, {"another adaptdiff run is writing", path + ".lock"});
  fs::remove(path + ".lock");
}

TEST(OutputFile, ResumeKeepsTheFilesBatchSizeUnlessRebatched) {
  EXPECT_EQ(job::compute_batch_size(/*start_new=*/true, 0, 7, false, false), 7);
  EXPECT_EQ(job::compute_batch_size(false, 5, 7, /*rebatch=*/false, false), 5);
  EXPECT_EQ(job::compute_batch_size(false, 5, 7, /*rebatch=*/true, false), 7);
  EXPECT_EQ(job::compute_batch_size(false, 5, 5, true, false), 5);
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
