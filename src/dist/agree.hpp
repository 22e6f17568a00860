#pragma once
// Collective error agreement, the one place where ranks agree on an error: a step that may fail on some ranks
// only is run on every rank, and then either every rank goes on or every rank throws the same error, so no
// rank is left waiting in a later collective.
#include <cstdint>
#include <exception>
#include <functional>
#include <vector>

#include "dist/comm.hpp"

namespace adaptdiff::dist {

/// Runs `step` on every rank of `comm` (COLLECTIVE: every rank must call it, in the same order).
/// If it throws on any rank, every rank throws the error of the lowest failing rank, of the same type
/// (ConfigError, InputError, ModelError, IoError, CommError, else Error) with "[rank R] " prefixed when
/// world_size > 1 and Error::on_all_ranks() set. `what` names the step for errors that are not ours.
/// Cost: one small allreduce, plus a broadcast of the message on failure.
void agree(const Comm& comm, const char* what, const std::function<void()>& step);

/// As agree(), and in the same allreduce the element-wise maximum over ranks of `flags` (e.g. "stop
/// requested", "checkpoint due"), read after `step` ran; every rank must pass the same number of flags.
/// `flags` is a reference so that the step can set this rank's values. Returns the maxima.
std::vector<int64_t> agree(const Comm& comm, const char* what, const std::function<void()>& step,
                           std::vector<int64_t>& flags);

/// How every executable's `main` ends on an exception `e` (the only place that aborts): an adaptdiff Error
/// that every rank raised (agreed, Error::on_all_ranks()) or one of a one-rank job is logged by rank 0 and its
/// exit code returned (exit_code_for: 2 bad input, 1 otherwise); an Error of one rank only, or any other
/// exception, is logged on that rank and aborts the whole job (MPI_Abort) so that no rank waits forever.
int exit_on_failure(const Comm& world, const std::exception& e);

}  // namespace adaptdiff::dist
