#pragma once
// Collective error agreement: a step that may fail on some ranks only is run on every rank, and then either
// every rank goes on or every rank throws the same error, so no rank is left waiting in a later collective.
#include <functional>

#include "dist/comm.hpp"

namespace adaptdiff::dist {

/// Runs `step` on every rank of `comm` (COLLECTIVE: every rank must call it, in the same order).
/// If it throws on any rank, every rank throws the error of the lowest failing rank, of the same type
/// (ConfigError, InputError, ModelError, IoError, CommError, else Error) with "[rank R] " prefixed when
/// world_size > 1 and Error::on_all_ranks() set. `what` names the step for errors that are not ours.
/// Cost: two small allreduces, plus a broadcast of the message on failure.
void agree(const Comm& comm, const char* what, const std::function<void()>& step);

}  // namespace adaptdiff::dist
