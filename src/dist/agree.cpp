#include "dist/agree.hpp"

#include <string>

#include "core/error.hpp"
#include "core/log.hpp"

namespace adaptdiff::dist {

namespace {
enum Kind : char { kNone = '0', kConfig, kInput, kModel, kIo, kComm, kOther };

template <typename E>
[[noreturn]] void raise_on_all_ranks(E e) {
  e.set_on_all_ranks();
  throw e;
}

/// Runs step; returns its error's kind and message (kNone when it succeeded).
Kind run_step(const char* what, const std::function<void()>& step, std::string& message) {
  try {
    step();
    return kNone;
  } catch (const ConfigError& e) {
    message = e.what();
    return kConfig;
  } catch (const InputError& e) {
    message = e.what();
    return kInput;
  } catch (const ModelError& e) {
    message = e.what();
    return kModel;
  } catch (const IoError& e) {
    message = e.what();
    return kIo;
  } catch (const CommError& e) {
    message = e.what();
    return kComm;
  } catch (const std::exception& e) {
    message = std::string(what) + ": " + e.what();
    return kOther;
  }
}

/// Throws, on every rank, the error of the lowest failing rank `failing` (COLLECTIVE).
[[noreturn]] void raise_agreed(const Comm& comm, int failing, Kind kind, const std::string& message) {
  // The kind travels as the first character of the broadcast text.
  const std::string packed = comm.bcast(std::string(1, static_cast<char>(kind)) + message, failing);
  std::string text = packed.substr(1);
  if (comm.size() > 1) text = "[rank " + std::to_string(failing) + "] " + text;
  switch (packed.empty() ? kOther : static_cast<Kind>(packed[0])) {
    case kConfig: raise_on_all_ranks(ConfigError(text));
    case kInput: raise_on_all_ranks(InputError(text));
    case kModel: raise_on_all_ranks(ModelError(text));
    case kIo: raise_on_all_ranks(IoError(text));
    case kComm: raise_on_all_ranks(CommError(text));
    default: raise_on_all_ranks(Error(text));
  }
}
}  // namespace

std::vector<int64_t> agree(const Comm& comm, const char* what, const std::function<void()>& step,
                           std::vector<int64_t>& flags) {
  std::string message;
  const Kind kind = run_step(what, step, message);
  // Element 0: size - rank on a failing rank, 0 elsewhere; its maximum names the lowest failing rank.
  std::vector<int64_t> local{kind != kNone ? comm.size() - comm.rank() : 0};
  local.insert(local.end(), flags.begin(), flags.end());
  std::vector<int64_t> agreed = comm.allreduce(local, ReduceOp::kMax);
  if (agreed[0] != 0) raise_agreed(comm, static_cast<int>(comm.size() - agreed[0]), kind, message);
  return {agreed.begin() + 1, agreed.end()};
}

void agree(const Comm& comm, const char* what, const std::function<void()>& step) {
  std::vector<int64_t> none;
  agree(comm, what, step, none);
}

int exit_on_failure(const Comm& world, const std::exception& e) {
  const auto* error = dynamic_cast<const Error*>(&e);
  if (error != nullptr && (error->on_all_ranks() || world.size() == 1)) {
    if (world.rank() == 0) log::error("{}", e.what());
    return exit_code_for(e);
  }
  const int code = error != nullptr ? exit_code_for(e) : static_cast<int>(ExitCode::kFailure);
  if (error != nullptr) {
    log::error("{}", e.what());
  } else {
    log::error("unexpected failure: {}", e.what());
  }
  if (world.size() > 1) world.abort(code);
  return code;
}

}  // namespace adaptdiff::dist
