#pragma once
// The world communicator of the dist_mpi test binary (owned by the MpiEnvironment in its main).
#include "dist/comm.hpp"

const adaptdiff::dist::Comm& test_world();
