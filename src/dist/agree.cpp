#include "dist/agree.hpp"

#include <string>

#include "core/error.hpp"

namespace adaptdiff::dist {

namespace {
enum Kind : int64_t { kNone = 0, kConfig, kInput, kModel, kIo, kComm, kOther };

template <typename E>
[[noreturn]] void raise_on_all_ranks(E e) {
  e.set_on_all_ranks();
  throw e;
}
}  // namespace

void agree(const Comm& comm, const char* what, const std::function<void()>& step) {
  std::string message;
  int64_t kind = kNone;
  try {
    step();
  } catch (const ConfigError& e) {
    message = e.what(), kind = kConfig;
  } catch (const InputError& e) {
    message = e.what(), kind = kInput;
  } catch (const ModelError& e) {
    message = e.what(), kind = kModel;
  } catch (const IoError& e) {
    message = e.what(), kind = kIo;
  } catch (const CommError& e) {
    message = e.what(), kind = kComm;
  } catch (const std::exception& e) {
    message = std::string(what) + ": " + e.what(), kind = kOther;
  }
  const int64_t failing = comm.allreduce(kind != kNone ? comm.rank() : comm.size(), ReduceOp::kMin);
  if (failing == comm.size()) return;
  message = comm.bcast(message, static_cast<int>(failing));
  const int64_t k = comm.allreduce(comm.rank() == failing ? kind : kNone, ReduceOp::kMax);
  if (comm.size() > 1) message = "[rank " + std::to_string(failing) + "] " + message;
  switch (k) {
    case kConfig: raise_on_all_ranks(ConfigError(message));
    case kInput: raise_on_all_ranks(InputError(message));
    case kModel: raise_on_all_ranks(ModelError(message));
    case kIo: raise_on_all_ranks(IoError(message));
    case kComm: raise_on_all_ranks(CommError(message));
    default: raise_on_all_ranks(Error(message));
  }
}

}  // namespace adaptdiff::dist
