#include "job/output_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.hpp"
#include "core/log.hpp"
#include "dist/agree.hpp"
#include "dist/comm.hpp"

namespace adaptdiff::job {

namespace fs = std::filesystem;

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);
}

void RunLock::acquire(const std::string& output) {
  const std::string path = output + ".lock";
  fd_ = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (fd_ < 0) throw IoError("output: cannot create lock file " + path + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
  const int err = errno;
  if (err == EWOULDBLOCK) {
    throw IoError("output: another adaptdiff run is writing " + output + " (it holds " + path +
                  "); nothing was changed\n---> HINT: wait for it to finish, or choose another output.path");
  }
  log::warn("output: cannot lock {} ({}); continuing without protection against a second writer", path,
            std::strerror(err));
}

void check_output_folder(const std::string& path) {
  const fs::path out(path);
  const fs::path dir = out.has_parent_path() ? out.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(dir, ec);  // every rank may try; the result is checked below
  if (!fs::is_directory(dir)) {
    throw IoError("output: cannot create folder " + dir.string() + (ec ? ": " + ec.message() : ""));
  }
  if (access(dir.c_str(), W_OK) != 0) throw IoError("output: folder " + dir.string() + " is not writable");
  if (fs::exists(out) && access(out.c_str(), W_OK) != 0) throw IoError("output: " + path + " is not writable");
}

/// Refuses an output path that is one of the run's input files (--force-new would destroy it).
void check_not_an_input(const config::RunConfig& cfg) {
  std::error_code ec;
  auto strip = [](const std::string& source) { return source.substr(0, source.find(":/")); };
  for (const std::string& input : {cfg.model.architecture, cfg.model.unet, cfg.model.decoder, strip(cfg.identities.source),
                                   strip(cfg.negatives.pool)}) {
    if (!input.empty() && fs::exists(input, ec) && fs::exists(cfg.output.path, ec) &&
        fs::equivalent(input, cfg.output.path, ec)) {
      throw ConfigError("config: output.path " + cfg.output.path + " is also an input of the run (" + input + ")");
    }
  }
}

/// The compute batch size of this run: the configured one for a new file; for a resume the file's, so that
/// the remaining samples are computed in the same batches as an uninterrupted run, unless `rebatch` asks for
/// the configured one (logged by rank 0 as not byte-identical; compute_batch_size records it per sample).
int64_t compute_batch_size(bool start_new, int64_t file_batch_size, int64_t configured, bool rebatch, bool root) {
  if (start_new || file_batch_size == configured) return configured;
  if (rebatch) {
    if (root) {
      log::warn("resume: --rebatch: the remaining samples are computed in batches of {} (run.batch_size) instead of "
                "the file's {}; their bytes may differ from an uninterrupted run (dataset compute_batch_size "
                "records the batch size of every sample)",
                configured, file_batch_size);
    }
    return configured;
  }
  if (root) {
    log::info("resume: computing in batches of {} as the file was created, not run.batch_size = {}, so the "
              "samples are byte-identical to an uninterrupted run (--rebatch uses {} and gives up that identity)",
              file_batch_size, configured, configured);
  }
  return file_batch_size;
}

std::unique_ptr<io::OutputStore> open_output(const dist::Comm& comm, const config::OutputSection& output,
                                             bool start_new, const io::StoreLayout& layout,
                                             const std::map<std::string, std::string>& attrs) {
  io::StoreOptions options;
  options.file_locking = output.file_locking;
  std::unique_ptr<io::OutputStore> store;
  const std::string creating = output.path + ".creating";
  dist::agree(comm, "output", [&] {
    store = std::make_unique<io::OutputStore>(
        start_new ? io::OutputStore::create(comm, creating, layout, attrs, options)
                  : io::OutputStore::open_existing(comm, output.path, options));
    if (!start_new && store->layout() != layout) {
      throw IoError("output: " + output.path + " has another layout than this run (image or latent size)");
    }
  });
  if (start_new) {
    dist::agree(comm, "output", [&] {
      if (comm.rank() == 0) fs::rename(creating, output.path);
    });
  }
  return store;
}

}  // namespace adaptdiff::job
