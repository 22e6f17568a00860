// Synthetic identity contexts against a random stream recorded by upstream Python (PyTorch 1.13, CPU):
// reference.h5:/sampling/x_T is the first torch.randn(2, 3, 16, 16) after torch.manual_seed(2024)
// (see ../shared/golden/idiff_face_tiny/README.md). Its 1536 values are exactly the first three rows of
// torch.randn(3, 512) after the same seed, so "synthetic_uniform" with seed 2024 must give
// F.normalize(x_T.reshape(3, 512), dim=1) — whichever rows are asked for.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cstdio>

#include <filesystem>
#include <string>

#include "io/identities.hpp"

namespace io = adaptdiff::io;

namespace {

const std::string kReference = std::string(ADAPTDIFF_SHARED_DIR) + "/golden/idiff_face_tiny/reference.h5";

// Reads /sampling/x_T with the HDF5 C API (independent of the code under test).
torch::Tensor read_x_t() {
  torch::Tensor out = torch::empty({2, 3, 16, 16}, torch::kFloat32);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const hid_t file = H5Fopen(kReference.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) return {};
  const hid_t dset = H5Dopen2(file, "/sampling/x_T", H5P_DEFAULT);
  const bool ok = dset >= 0 && H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr()) >= 0;
  if (dset >= 0) H5Dclose(dset);
  H5Fclose(file);
  return ok ? out : torch::Tensor();
}

TEST(GoldenSynthetic, MatchesPythonManualSeedRandnStream) {
  if (!std::filesystem::exists(kReference)) GTEST_SKIP() << "no golden data at " << kReference;
  const torch::Tensor x_t = read_x_t();
  ASSERT_TRUE(x_t.defined()) << "cannot read /sampling/x_T from " << kReference;
  const torch::Tensor raw = x_t.reshape({3, 512}).to(torch::kFloat64);
  const torch::Tensor expected = (raw / raw.norm(2, 1, true)).to(torch::kFloat32);

  io::ContextSource src;
  src.kind = io::ContextSource::Kind::kSyntheticUniform;
  src.seed = 2024;
  const torch::Tensor got = io::read_contexts(src, 0, 3);
  // The raw stream must be bit-identical; normalising in float32 vs float64 differs by rounding only.
  const double max_diff = (got - expected).abs().max().item<double>();
  std::printf("synthetic_uniform(seed=2024) rows [0,3) vs normalised Python x_T: max abs diff %.3g\n", max_diff);
  EXPECT_LT(max_diff, 1e-6);
  // The premise: LibTorch's CPU generator seeded like Python draws the same raw values, bit for bit.
  at::Generator gen = at::detail::createCPUGenerator(2024);
  EXPECT_TRUE(torch::equal(torch::randn({3, 512}, gen, torch::kFloat32), x_t.reshape({3, 512})));
  const torch::Tensor got_12 = io::read_contexts(src, 1, 3);
  EXPECT_TRUE(torch::equal(got_12, got.slice(0, 1, 3)));
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
