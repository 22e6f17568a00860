// eval_fixture DIR: writes the inputs of the --images end-to-end test (check_eval.py images):
//   DIR/data.h5     sampling output, 6 identities x 3 images of 112x112, rows 0, 5, 10, 15 not done
//   DIR/data120.h5  the same layout with 120x120 images (resized by adaptdiff-eval), rows 0, 5, ... not done
//   DIR/fr.pt       the TorchScript model of fixture.hpp
//   DIR/fr_bad.pt   a model returning [B] instead of [B, D]
//   DIR/empty.h5    a sampling output without any done sample
#include <cstdio>
#include <string>

#include "dist/mpi_environment.hpp"
#include "fixture.hpp"

int main(int argc, char** argv) {
  adaptdiff::dist::MpiEnvironment mpi(&argc, &argv);
  if (argc != 2) {
    std::fprintf(stderr, "usage: eval_fixture DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  adaptdiff::test::make_store_fixture(mpi.world(), dir + "/data.h5", 6, 3, 112, 5, 1);
  adaptdiff::test::make_store_fixture(mpi.world(), dir + "/data120.h5", 6, 3, 120, 5, 2);
  adaptdiff::test::make_store_fixture(mpi.world(), dir + "/empty.h5", 2, 2, 112, 1, 3);
  adaptdiff::test::make_fr_model(dir + "/fr.pt");
  adaptdiff::test::make_bad_fr_model(dir + "/fr_bad.pt");
  return 0;
}
