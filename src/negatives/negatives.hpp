#pragma once
// Umbrella header of adaptdiff::negatives: strategies, the reproducible cosine similarity and the
// blocked negative-identity selection (no MPI, no I/O; the distributed version lives in dist/).
#include "negatives/screened.hpp"
#include "negatives/selection.hpp"
#include "negatives/similarity.hpp"
#include "negatives/strategy.hpp"
