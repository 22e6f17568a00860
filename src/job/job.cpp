#include "job/job.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <torch/torch.h>

#include "adaptdiff/version.hpp"
#include "config/model_config.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/stop.hpp"
#include "dist/comm.hpp"
#include "dist/agree.hpp"
#include "dist/distributed_negatives.hpp"
#include "dist/partition.hpp"
#include "io/identities.hpp"
#include "io/sha256.hpp"
#include "io/store.hpp"
#include "job/plan.hpp"
#include "job/progress.hpp"
#include "model/loader.hpp"
#include "negatives/selection.hpp"
#include "sampler/guidance.hpp"
#include "sampler/noise.hpp"
#include "sampler/samplers.hpp"
#include "sampler/schedule.hpp"

namespace adaptdiff::job {

namespace fs = std::filesystem;
using dist::agree;

/// Root attribute of the output: the compute batch size of the grid the file was created with (plan.hpp).
constexpr const char* kComputeBatchSize = "compute_batch_size";

int threads_per_rank(int64_t configured, int ranks_on_node, int cpus_allowed, int cores_on_node) {
  if (configured > 0) return static_cast<int>(configured);
  if (cores_on_node <= 0) cores_on_node = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  const int share = std::max(1, cores_on_node / std::max(1, ranks_on_node));
  return std::max(1, std::min(cpus_allowed > 0 ? cpus_allowed : share, share));
}

int pin_blas_threads(int threads) {
  // OpenBLAS sizes its own thread pool from the CPU affinity at load time, independently of LibTorch;
  // how it splits a GEMM over threads changes the rounding of some rows. Pinning it makes results
  // independent of how the launcher binds ranks to cores.
  using SetFn = void (*)(int);
  using GetFn = int (*)();
  auto set = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  auto get = reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (set == nullptr || get == nullptr) return 0;
  set(threads);
  return get();
}

namespace {

int cpus_allowed() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
  return CPU_COUNT(&set);
}

/// Everything the sampling loop needs from the model side.
struct ModelBundle {
  std::shared_ptr<model::Denoiser> denoiser;
  std::shared_ptr<model::LatentDecoder> decoder;
  sampler::Schedule schedule;
  std::vector<int64_t> latent_shape;  // {C, h, w}
  int64_t image_height = 0, image_width = 0;
  int64_t context_dim = 512;
  std::string architecture;  // canonical text of the model file's values (idiff-face)
};

torch::Device pick_device(const config::RunConfig& cfg, const dist::Comm& comm) {
  const bool cuda = torch::cuda::is_available();
  if (cfg.run.device == "cuda" && !cuda) {
    throw ConfigError("config: run.device = \"cuda\" but this LibTorch build sees no CUDA device\n"
                      "---> HINT: use run.device = \"auto\" or \"cpu\"");
  }
  if (cfg.run.device == "cpu" || !cuda) return torch::Device(torch::kCPU);
  const int n = static_cast<int>(torch::cuda::device_count());
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(comm.local_rank() % n));
}

void require_file(const std::string& path, const std::string& key) {
  if (!fs::is_regular_file(path)) {
    throw ConfigError("config: " + key + " = \"" + path + "\": file not found");
  }
}

ModelBundle load_model(const config::RunConfig& cfg, torch::Device device) {
  ModelBundle b;
  const auto& m = cfg.model;
  if (m.kind == "idiff-face") {
    require_file(m.architecture, "model.architecture");
    const config::ModelConfig mc = config::load_model_config(m.architecture);
    b.architecture = config::canonical_text(mc);
    b.schedule = sampler::Schedule::linear(mc.diffusion.T, mc.diffusion.beta_1, mc.diffusion.beta_T);
    b.latent_shape = {mc.diffusion.latent_channels, mc.diffusion.latent_height, mc.diffusion.latent_width};
    b.image_height = mc.decoder.image_size(mc.diffusion.latent_height);
    b.image_width = mc.decoder.image_size(mc.diffusion.latent_width);
    b.context_dim = mc.unet.context_input_channels;
    if (m.init == "random") {
      b.denoiser = model::random_idiff_face_unet(mc, static_cast<uint64_t>(m.init_seed), device);
      b.decoder = model::random_vq_decoder(mc, static_cast<uint64_t>(m.init_seed) + 1, device);
    } else {
      require_file(m.unet, "model.unet");
      require_file(m.decoder, "model.decoder");
      model::StateDict buffers;
      b.denoiser = model::load_idiff_face_unet(mc, m.unet, device, &buffers);
      sampler::check_schedule_buffers(b.schedule, buffers, m.unet);
      b.decoder = model::load_vq_decoder(mc, m.decoder, device);
    }
  } else {
    require_file(m.unet, "model.unet");
    require_file(m.decoder, "model.decoder");
    b.schedule = sampler::Schedule::linear(m.T, m.beta_1, m.beta_T);
    b.latent_shape = {m.latent_channels, m.latent_height, m.latent_width};
    b.denoiser = model::load_torchscript_denoiser(m.unet, device);
    b.decoder = model::load_torchscript_decoder(m.decoder, device);
    b.context_dim = cfg.identities.context_dim;
    // The decoder's output size is found by decoding one latent.
    torch::NoGradGuard ng;
    auto probe = b.decoder->decode(torch::zeros({1, m.latent_channels, m.latent_height, m.latent_width},
                                                torch::TensorOptions().device(device)));
    b.image_height = probe.size(2);
    b.image_width = probe.size(3);
  }
  if (b.context_dim != cfg.identities.context_dim) {
    throw ConfigError("config: identities.context_dim = " + std::to_string(cfg.identities.context_dim) +
                      " but the model expects contexts of width " + std::to_string(b.context_dim));
  }
  return b;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024.0 && u < 4) b /= 1024.0, ++u;
  std::ostringstream os;
  os.precision(b < 10 ? 2 : 1);
  os << std::fixed << b << " " << units[u];
  return os.str();
}

/// Maps decoded images [B,3,H,W] f32 (~[-1,1]) to uint8 [B,H,W,3] on the CPU.
/// Ref: upstream denormalize_to_zero_to_one ((x+1)/2, clamp to [0,1]) then torchvision save_image
/// (mul(255).add_(0.5).clamp_(0,255).to(uint8), i.e. round half up).
torch::Tensor to_uint8_hwc(const torch::Tensor& image) {
  torch::Tensor v = ((image + 1) / 2).clamp(0, 1);
  v = (v * 255 + 0.5).clamp(0, 255).to(torch::kUInt8);
  return v.permute({0, 2, 3, 1}).contiguous().to(torch::kCPU);
}

/// Thrown from inside the diffusion loop when a stop signal arrived: the batch is abandoned (nothing of it is
/// marked done) and the ranks go to their agreement.
struct BatchAbandoned {};

void print_plan(const Plan& plan, const config::RunConfig& cfg, const ModelBundle& mb,
                const sampler::GuidanceSchedule& guidance, bool ddim) {
  log::info("plan: {} identities x {} images = {} samples, {} batches of {} on {} rank(s)", plan.identities,
            plan.images_per_identity, plan.samples, plan.batches, plan.batch_size, plan.world_size);
  log::info("plan: {} {} steps per batch ({} guided with a 2B forward), {} forward rows per batch, "
            "guidance '{}', negatives '{}'",
            plan.timesteps.size(), ddim ? "DDIM" : "DDPM", plan.guided_steps, plan.rows_per_batch(), guidance.name(),
            cfg.negatives.strategy);
  for (int r = 0; r < plan.world_size; ++r) {
    const Span b = plan.rank_batches[static_cast<size_t>(r)], ids = plan.rank_identities[static_cast<size_t>(r)];
    log::info("plan: rank {}: batches [{}, {}) ({} samples), identity shard [{}, {})", r, b.begin, b.end,
              plan.rank_samples(r), ids.begin, ids.end);
  }
  const double image_bytes = static_cast<double>(plan.samples) * mb.image_height * mb.image_width * 3;
  const double latent = static_cast<double>(mb.latent_shape[0] * mb.latent_shape[1] * mb.latent_shape[2]);
  const double per_rank = static_cast<double>(plan.batch_size) *
                          (latent * 4 * 6 + static_cast<double>(mb.image_height * mb.image_width) * (3 * 4 * 2 + 3));
  log::info("plan: output {} ({} of images), per-rank sampling buffers ~{} plus the model and its activations",
            cfg.output.path, human_bytes(image_bytes), human_bytes(per_rank));
  if (plan.batch_size > plan.samples) {
    log::warn("plan: run.batch_size = {} exceeds the {} samples: every forward is padded to {} rows", plan.batch_size,
              plan.samples, plan.batch_size);
  }
  if (plan.batches < plan.world_size) {
    log::warn("plan: {} batch(es) for {} ranks: {} rank(s) will have no work (use fewer ranks or a smaller "
              "run.batch_size)",
              plan.batches, plan.world_size, plan.world_size - plan.batches);
  }
}

std::string source_identity(const io::ContextSource& src) {
  if (src.kind == io::ContextSource::kSyntheticUniform) return "synthetic_uniform(seed=" + std::to_string(src.seed) + ")";
  return io::sha256_file(src.path) + (src.kind == io::ContextSource::kHdf5 ? ":" + src.dataset : "");
}

std::string number(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

/// Root attributes of the output: resolved config, file hashes, version, and the fingerprint -- one
/// attribute per part of everything that changes the samples (compared on resume).
std::map<std::string, std::string> run_attributes(const config::RunConfig& cfg, const io::ContextSource& ids,
                                                  const io::ContextSource* pool, const ModelBundle& mb) {
  std::map<std::string, std::string> a;
  a["adaptdiff_version"] = kVersion;
  a["layout_version"] = "3";
  a["config_toml"] = config::to_toml(cfg);
  const auto& m = cfg.model;
  std::string model = "kind=" + m.kind + ";init=" + m.init;
  // The architecture enters by value (comments and layout of the model file do not matter); its file hash is
  // kept as provenance only.
  if (!m.architecture.empty()) {
    a["sha256_architecture"] = io::sha256_file(m.architecture);
    model += ";architecture=" + io::sha256_bytes(mb.architecture);
  }
  if (m.init == "random") {
    model += ";init_seed=" + std::to_string(m.init_seed);
  } else {
    model += ";unet=" + (a["sha256_unet"] = io::sha256_file(m.unet));
    model += ";decoder=" + (a["sha256_decoder"] = io::sha256_file(m.decoder));
  }
  if (m.kind == "torchscript") {
    model += ";T=" + std::to_string(m.T) + ";betas=" + number(m.beta_1) + "," + number(m.beta_T) + ";latent=" +
             std::to_string(m.latent_channels) + "x" + std::to_string(m.latent_height) + "x" +
             std::to_string(m.latent_width);
  }
  a["fingerprint.model"] = model;
  a["fingerprint.sampler"] = "kind=" + cfg.sampler.kind + ";steps=" + std::to_string(cfg.sampler.steps) +
                             (cfg.sampler.kind == "ddim" ? ";eta=" + number(cfg.sampler.eta) : "");
  const auto& g = cfg.guidance;
  a["fingerprint.guidance"] = "schedule=" + g.schedule + (g.schedule == "constant" ? ";w=" + number(g.w) : "") +
                              (g.schedule == "linear" || g.schedule == "reverse" ? ";w_max=" + number(g.w_max) : "");
  a["fingerprint.negatives"] = "strategy=" + cfg.negatives.strategy +
                               (pool != nullptr && cfg.negatives.strategy != "zero" && cfg.negatives.strategy != "none"
                                    ? ";pool=" + source_identity(*pool)
                                    : "") +
                               (cfg.negatives.strategy == "random" ? ";seed=" + std::to_string(cfg.negatives.seed) : "");
  const auto& id = cfg.identities;
  a["fingerprint.identities"] = "source=" + source_identity(ids) + ";count=" + std::to_string(id.count) +
                                ";offset=" + std::to_string(id.offset) + ";images_per_identity=" +
                                std::to_string(id.images_per_identity) + ";context_dim=" + std::to_string(id.context_dim);
  a["fingerprint.seed"] = std::to_string(cfg.run.seed);
  a["fingerprint.image"] = std::to_string(mb.image_height) + "x" + std::to_string(mb.image_width) +
                           ";latents=" + (cfg.output.store_latents ? "stored" : "none");
  return a;
}

/// Root's map on every rank (COLLECTIVE).
std::map<std::string, std::string> bcast_map(const dist::Comm& comm, const std::map<std::string, std::string>& m) {
  std::string packed;
  for (const auto& [k, v] : m) packed += std::to_string(k.size()) + ":" + k + std::to_string(v.size()) + ":" + v;
  packed = comm.bcast(packed, 0);
  std::map<std::string, std::string> out;
  size_t pos = 0;
  auto take = [&] {
    const size_t colon = packed.find(':', pos);
    const size_t len = std::stoull(packed.substr(pos, colon - pos));
    std::string s = packed.substr(colon + 1, len);
    pos = colon + 1 + len;
    return s;
  };
  while (pos < packed.size()) {
    std::string k = take();
    out[k] = take();
  }
  return out;
}

/// Refuses (IoError, nothing changed) an existing output that is unreadable or was written by another run;
/// returns the compute batch size the file records (root attribute compute_batch_size).
int64_t check_same_run(const std::string& path, const std::map<std::string, std::string>& attrs, bool file_locking) {
  const std::string hint = "\n---> HINT: run with --force-new to replace it, or choose another output.path";
  std::map<std::string, std::string> stored;
  try {
    io::StoreOptions o;
    o.file_locking = file_locking;
    stored = io::StoreReader(path, o).string_attributes();
  } catch (const std::exception& e) {
    throw IoError("output: " + path + " exists but cannot be resumed: " + e.what() + "\nNothing was changed." + hint);
  }
  std::string diff;
  for (const auto& [key, value] : attrs) {
    if (key.rfind("fingerprint.", 0) != 0 && key != "layout_version") continue;
    const auto it = stored.find(key);
    const std::string old = it == stored.end() ? "(absent)" : it->second;
    if (old != value) diff += "\n  " + key.substr(key.find('.') + 1) + ": stored '" + old + "', this run '" + value + "'";
  }
  if (!diff.empty()) {
    throw IoError("output: " + path + " was written by a different run; these parts differ:" + diff +
                  "\nNothing was changed." + hint);
  }
  const auto it = stored.find(kComputeBatchSize);
  int64_t batch_size = 0;
  try {
    batch_size = it == stored.end() ? 0 : std::stoll(it->second);
  } catch (const std::exception&) {
  }
  if (batch_size < 1) {
    throw IoError("output: " + path + " has no valid root attribute '" + kComputeBatchSize + "'" + hint);
  }
  return batch_size;
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

/// The progress record of a sample: 63 bits of SHA-256 over (SHA-256 of its image bytes, its labels, the
/// compute batch size it was made with, and the SHA-256 of its latent bytes when latents are stored); never 0
/// (0 = not done).
int64_t sample_checksum(const torch::Tensor& image, int64_t identity, int64_t sample_index, int64_t batch_size,
                        const torch::Tensor& latent = torch::Tensor()) {
  auto digest = [](const torch::Tensor& t) {
    const torch::Tensor c = t.contiguous();
    return io::sha256_bytes(std::string_view(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size()));
  };
  std::string record = digest(image);
  record.append(reinterpret_cast<const char*>(&identity), sizeof identity);
  record.append(reinterpret_cast<const char*>(&sample_index), sizeof sample_index);
  record.append(reinterpret_cast<const char*>(&batch_size), sizeof batch_size);
  if (latent.defined()) record += digest(latent);
  const uint64_t h = std::stoull(io::sha256_bytes(record).substr(0, 16), nullptr, 16) & 0x7FFFFFFFFFFFFFFFULL;
  return h == 0 ? 1 : static_cast<int64_t>(h);
}

/// Calls fn(first, count) for each maximal run of consecutive values in the increasing `rows`, split so
/// that no run is longer than `max_run`.
template <typename Fn>
void for_each_run(const std::vector<int64_t>& rows, int64_t max_run, Fn&& fn) {
  size_t a = 0;
  while (a < rows.size()) {
    size_t b = a + 1;
    while (b < rows.size() && rows[b] == rows[b - 1] + 1 && static_cast<int64_t>(b - a) < max_run) ++b;
    fn(a, static_cast<int64_t>(b - a));
    a = b;
  }
}

/// Samples still to do (COLLECTIVE): those never marked done, plus done ones whose stored images/labels no
/// longer match their checksum (verified in parallel, each rank a block of the done samples).
std::vector<int64_t> pending_samples(const dist::Comm& comm, io::OutputStore& store, int64_t samples,
                                     bool with_latents) {
  const torch::Tensor sums = store.read_rows(io::store_dataset::kSampleChecksum, 0, samples);
  const int64_t* sum = sums.data_ptr<int64_t>();
  std::vector<int64_t> done;
  for (int64_t s = 0; s < samples; ++s) {
    if (sum[s] != 0) done.push_back(s);
  }
  const Span part = dist::block_partition(static_cast<int64_t>(done.size()), comm.rank(), comm.size());
  const std::vector<int64_t> mine(done.begin() + part.begin, done.begin() + part.end);
  std::vector<int64_t> bad(static_cast<size_t>(samples), 0);
  agree(comm, "verify", [&] {
    for_each_run(mine, 256, [&](size_t a, int64_t n) {
      const int64_t first = mine[a];
      const torch::Tensor images = store.read_rows(io::store_dataset::kImages, first, n);
      const torch::Tensor ids = store.read_rows(io::store_dataset::kIdentity, first, n);
      const torch::Tensor ks = store.read_rows(io::store_dataset::kSampleIndex, first, n);
      const torch::Tensor bs = store.read_rows(io::store_dataset::kComputeBatchSize, first, n);
      const torch::Tensor latents =
          with_latents ? store.read_rows(io::store_dataset::kLatents, first, n) : torch::Tensor();
      const int64_t* id = ids.data_ptr<int64_t>();
      const int64_t* k = ks.data_ptr<int64_t>();
      const int64_t* b = bs.data_ptr<int64_t>();
      for (int64_t j = 0; j < n; ++j) {
        const torch::Tensor latent = with_latents ? latents[j] : torch::Tensor();
        if (sample_checksum(images[j], id[j], k[j], b[j], latent) != sum[first + j]) bad[first + j] = 1;
      }
    });
  });
  bad = comm.allreduce(bad, dist::ReduceOp::kMax);
  std::vector<int64_t> pending;
  int64_t redo = 0;
  for (int64_t s = 0; s < samples; ++s) {
    if (sum[s] == 0 || bad[s] != 0) pending.push_back(s);
    redo += bad[s];
  }
  if (redo > 0 && comm.rank() == 0) {
    log::warn("resume: {} sample(s) marked done failed their checksum and will be redone", redo);
  }
  return pending;
}

/// An exclusive advisory lock on "<output>.lock" held by rank 0 for the whole run, so that two jobs never
/// write (or replace) the same output at once. The lock file stays; only the lock matters.
class RunLock {
 public:
  RunLock() = default;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  ~RunLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  void acquire(const std::string& output) {
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

 private:
  int fd_ = -1;
};

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

/// Every rank throws the error of the lowest failing rank after closing the store (COLLECTIVE).
[[noreturn]] void fail_together(const dist::Comm& comm, io::OutputStore& store, bool i_failed,
                                const std::string& message) {
  const int64_t failing = comm.allreduce(i_failed ? comm.rank() : comm.size(), dist::ReduceOp::kMin);
  const std::string text = comm.bcast(message, static_cast<int>(failing));
  try {
    store.close();
  } catch (const std::exception& e) {
    log::warn("closing the output after the failure: {}", e.what());
  }
  Error e("[rank " + std::to_string(failing) + "] sampling failed: " + text +
          "\n---> HINT: the output stays resumable: fix the cause (e.g. free disk space) and run the same command "
          "again");
  e.set_on_all_ranks();
  throw e;
}

/// Samples one global batch and stores its pending samples: images, labels, optional latents, then the
/// progress record.
struct BatchSampler {
  const config::RunConfig& cfg;
  const ModelBundle& mb;
  const sampler::GuidanceSchedule& guidance;
  torch::Device device;
  bool ddim;
  int64_t K;
  int64_t batch_size;      // B of the grid (may differ from cfg.run.batch_size on resume)
  Span touched;            // identities covered by pos_rows/neg_rows
  torch::Tensor pos_rows;  // [touched, D] p+
  torch::Tensor neg_rows;  // [touched, D] p- (undefined for strategy none)
  io::OutputStore& store;
  sampler::ForwardCounter counter{};

  /// rows: the consecutive sample numbers of one grid batch (at most batch_size), computed together;
  /// to_write: the increasing subset of rows to store (the pending ones). Returns to_write.size(). Throws
  /// BatchAbandoned when a stop signal arrives during sampling, IoError/ModelError on failures.
  int64_t run(const std::vector<int64_t>& rows, const std::vector<int64_t>& to_write) {
    const int64_t B = batch_size, n = static_cast<int64_t>(rows.size());
    std::vector<int64_t> identity(static_cast<size_t>(B)), image(identity.size()), local(identity.size());
    std::vector<uint64_t> seeds(identity.size());
    for (int64_t r = 0; r < B; ++r) {
      const int64_t s = rows[static_cast<size_t>(std::min(r, n - 1))];  // pad a short batch with its last sample
      identity[r] = s / K;
      image[r] = s % K;
      local[r] = identity[r] - touched.begin;
      seeds[r] = sampler::sample_seed(static_cast<uint64_t>(cfg.run.seed), cfg.identities.offset + identity[r], image[r]);
    }
    torch::NoGradGuard no_grad;
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
    const torch::Tensor index = torch::tensor(local, torch::kInt64);
    const torch::Tensor ctx_pos = pos_rows.index_select(0, index).to(f32);
    const torch::Tensor ctx_neg = neg_rows.defined() ? neg_rows.index_select(0, index).to(f32) : torch::Tensor();

    sampler::BatchNoise noise(seeds, mb.latent_shape);
    const torch::Tensor x_T = noise.next().to(device);
    const auto eps_fn = sampler::guided_eps(*mb.denoiser, ctx_pos, ctx_neg, guidance, mb.schedule.T, &counter);
    const sampler::NoiseFn noise_fn = [&](int64_t) { return noise.next().to(device); };
    const sampler::StepObserver stop_check = [](int64_t, const torch::Tensor&) {
      if (stop::requested()) throw BatchAbandoned{};
    };
    const torch::Tensor x0 =
        ddim ? sampler::sample_ddim(mb.schedule, eps_fn, x_T, cfg.sampler.steps, cfg.sampler.eta, noise_fn, stop_check)
             : sampler::sample_ddpm(mb.schedule, eps_fn, x_T, noise_fn, stop_check);
    const torch::Tensor images = to_uint8_hwc(mb.decoder->decode(x0)).slice(0, 0, n);
    const torch::Tensor ids = torch::tensor(identity, torch::kInt64).slice(0, 0, n);
    const torch::Tensor ks = torch::tensor(image, torch::kInt64).slice(0, 0, n);
    const torch::Tensor latents = cfg.output.store_latents ? x0.slice(0, 0, n).to(torch::kCPU).contiguous() : torch::Tensor();

    // Data first, then the record: a sample counts as done only once its data were written before it.
    std::vector<int64_t> sums(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      sums[j] = sample_checksum(images[j], identity[j], image[j], B, latents.defined() ? latents[j] : torch::Tensor());
    }
    const torch::Tensor sums_t = torch::tensor(sums, torch::kInt64);
    const torch::Tensor batch_sizes = torch::full({n}, B, torch::kInt64);
    try {
      // rows are consecutive, so the position of sample s in the batch is s - rows.front().
      for_each_run(to_write, B, [&](size_t a, int64_t m) {
        const int64_t s = to_write[a], j = s - rows.front();
        store.write_images(s, images.slice(0, j, j + m));
        store.write_samples_labels(s, ids.slice(0, j, j + m), ks.slice(0, j, j + m));
        store.write_compute_batch_sizes(s, batch_sizes.slice(0, j, j + m));
        if (latents.defined()) store.write_latents(s, latents.slice(0, j, j + m));
      });
      for_each_run(to_write, B, [&](size_t a, int64_t m) {
        const int64_t s = to_write[a], j = s - rows.front();
        store.write_checksums(s, sums_t.slice(0, j, j + m));
      });
    } catch (const IoError& e) {
      throw IoError(std::string(e.what()) + full_disk_note(store.path(), images.numel()));
    }
    return static_cast<int64_t>(to_write.size());
  }

  /// " (no space left on device: ...)" when the output's file system has less room than one batch.
  static std::string full_disk_note(const std::string& path, int64_t batch_bytes) {
    std::error_code ec;
    const auto space = fs::space(fs::absolute(path).parent_path(), ec);
    if (ec || space.available >= static_cast<uintmax_t>(2 * batch_bytes)) return "";
    return " (No space left on device: the file system of " + fs::absolute(path).parent_path().string() + " has " +
           human_bytes(static_cast<double>(space.available)) + " free)";
  }
};



/// The part of the job after the store is open: verify the record, plan the pending samples, sample them in
/// rounds closed by an agreement, checkpoint, close (COLLECTIVE).
JobSummary sample_and_store(const dist::Comm& comm, const config::RunConfig& cfg, const ModelBundle& mb,
                            const sampler::GuidanceSchedule& guidance, torch::Device device,
                            bool ddim, int64_t batch_size, const std::vector<int64_t>& timesteps,
                            const std::vector<double>& weights,
                            io::OutputStore& store, Span my_ids, const torch::Tensor& my_contexts,
                            const torch::Tensor& my_pool, Span my_pool_span, int64_t pool_total,
                            bool pool_is_identity_set, negatives::Strategy strategy,
                            const negatives::Selection& selection, const std::vector<int64_t>& all_negative_index,
                            bool start_new, const io::ContextSource& id_source) {
  const int rank = comm.rank();
  const int world = comm.size();
  const bool root = rank == 0;
  const auto& idc = cfg.identities;
  const int64_t N = idc.count, K = idc.images_per_identity;
  // Contexts and negatives are deterministic: (re)writing them on every start keeps them complete.
  store.write_contexts(my_ids.begin, my_contexts);
  store.write_negatives(my_ids.begin, selection.negative_index, selection.negative_similarity);

  // ---- progress record: verify what is marked done, plan the rest ------------------------------------------
  const std::vector<int64_t> pending = pending_samples(comm, store, N * K, cfg.output.store_latents);
  const int64_t done_before = N * K - static_cast<int64_t>(pending.size());
  const Plan plan = make_plan(N, K, pending, batch_size, timesteps, weights, world);
  if (root && !start_new) {
    log::info("resume: {}/{} samples already done and verified; {} to do in {} batches", done_before, N * K,
              pending.size(), plan.batches);
  }

  // ---- contexts of the identities this rank's batches touch, and of their negatives ---------------------
  const Span my_batches = plan.rank_batches[static_cast<size_t>(rank)];
  Span touched{0, 0};
  if (my_batches.size() > 0) {
    touched.begin = plan.batch_rows(my_batches.begin).front() / K;
    touched.end = plan.batch_rows(my_batches.end - 1).back() / K + 1;
  }
  torch::Tensor pos_rows, neg_rows;  // [touched, D]
  agree(comm, "contexts", [&] {
    if (touched.size() > 0) {
      pos_rows = io::read_contexts(id_source, idc.offset + touched.begin, idc.offset + touched.end, idc.context_dim);
    }
  });
  if (strategy == negatives::Strategy::kZero) {
    neg_rows = torch::zeros({touched.size(), idc.context_dim}, torch::kFloat32);
  } else if (strategy != negatives::Strategy::kNone) {
    // Collective: the negative conditions p- come from whichever rank holds those pool rows.
    std::vector<int64_t> wanted(all_negative_index.begin() + touched.begin, all_negative_index.begin() + touched.end);
    neg_rows = dist::gather_pool_rows(comm, torch::tensor(wanted, torch::kInt64),
                                      pool_is_identity_set ? my_contexts : my_pool, my_pool_span.begin, pool_total);
  }

  // ---- sampling: rounds of one batch per rank, each closed by an agreement --------------------------------
  BatchSampler sampler{cfg, mb, guidance, device, ddim, K, batch_size, touched, pos_rows, neg_rows, store};
  Progress progress(root, N * K, done_before, plan.rank_samples(rank), cfg.run.progress_interval);
  int64_t written = 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto last_flush = t0;
  bool stopped = false;
  for (int64_t round = 0; round < plan.rounds(); ++round) {
    int64_t status = 0;  // 0 go on, 1 stop requested, 2 failed
    std::string failure;
    if (round < my_batches.size() && !stop::requested()) {
      try {
        const auto t_batch = std::chrono::steady_clock::now();
        const auto rows = plan.batch_rows(my_batches.begin + round);
        written += sampler.run(rows, plan.pending_rows(my_batches.begin + round));
        log::debug("batch {}: samples [{}..{}] ({} rows) in {:.2f} s", my_batches.begin + round, rows.front(),
                   rows.back(), rows.size(),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t_batch).count());
        progress.update(written);
      } catch (const BatchAbandoned&) {
        status = 1;
      } catch (const std::exception& e) {
        status = 2;
        failure = e.what();
      }
    }
    if (stop::requested()) status = std::max<int64_t>(status, 1);
    const double since_flush = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_flush).count();
    const std::vector<int64_t> agreed =
        comm.allreduce(std::vector<int64_t>{status, root && since_flush >= cfg.run.checkpoint_interval ? 1 : 0},
                       dist::ReduceOp::kMax);
    if (agreed[0] == 2) fail_together(comm, store, status == 2, failure);
    if (agreed[0] == 1) {
      stopped = true;
      break;
    }
    if (agreed[1] != 0) {
      store.flush();  // collective: a durable checkpoint
      last_flush = std::chrono::steady_clock::now();
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  agree(comm, "checkpoint", [&] { store.flush(); });
  agree(comm, "close", [&] { store.close(); });

  JobSummary summary;
  summary.images_written = comm.allreduce(written, dist::ReduceOp::kSum);
  summary.forwards = comm.allreduce(sampler.counter.calls, dist::ReduceOp::kSum);
  summary.seconds = comm.allreduce(seconds, dist::ReduceOp::kMax);
  summary.output_path = cfg.output.path;
  summary.samples_done = done_before + summary.images_written;
  summary.samples_total = N * K;
  summary.stopped = stopped && summary.samples_done < summary.samples_total;
  if (root) {
    const double rate = summary.seconds > 0 ? summary.images_written / summary.seconds : 0.0;
    if (summary.stopped) {
      log::warn("stopped on signal {}: checkpoint written, {}/{} samples done; run the same command again to "
                "resume (exit code {})",
                stop::signal_number(), summary.samples_done, summary.samples_total,
                static_cast<int>(ExitCode::kCheckpointed));
    } else {
      log::info("done: {} images ({} identities x {}) in {:.1f} s = {:.2f} images/s on {} rank(s); {} forward passes",
                summary.images_written, N, K, summary.seconds, rate, world, summary.forwards);
    }
    std::error_code ec;
    const auto bytes = fs::file_size(cfg.output.path, ec);
    log::info("wrote {} ({})", cfg.output.path, ec ? std::string("size unknown") : human_bytes(static_cast<double>(bytes)));
  }
  return summary;
}

}  // namespace

JobSummary run_sampling_job(const dist::Comm& comm, const config::RunConfig& cfg, const JobOptions& opts) {
  const int rank = comm.rank();
  const int world = comm.size();
  const bool root = rank == 0;

  // ---- threads and device -----------------------------------------------------------------------
  const int threads = threads_per_rank(cfg.run.threads, comm.local_size(), cpus_allowed(), 0);
  torch::set_num_threads(threads);
  const int blas_threads = pin_blas_threads(1);
  torch::Device device(torch::kCPU);
  agree(comm, "device", [&] { device = pick_device(cfg, comm); });
  log::info("device {}, {} intra-op thread(s) ({} rank(s) on this node, {} CPU(s) allowed{}), BLAS threads {}",
            device.str(), threads, comm.local_size(), cpus_allowed(), cfg.run.threads > 0 ? ", set by run.threads" : "",
            blas_threads > 0 ? std::to_string(blas_threads) : std::string("n/a"));

  // ---- validate inputs before any expensive work ----------------------------------------------------
  const auto& idc = cfg.identities;
  const int64_t N = idc.count;
  const int64_t K = idc.images_per_identity;
  io::ContextSource id_source, pool_source;
  int64_t pool_total = N;
  const bool pool_is_identity_set = cfg.negatives.pool.empty();
  const auto strategy = negatives::parse_strategy(cfg.negatives.strategy);
  const auto validate_sources = [&] {
    const std::string base = fs::path(cfg.config_path).parent_path().string();
    id_source = io::parse_context_source(idc.source, base);
    if (id_source.kind == io::ContextSource::kSyntheticUniform) id_source.seed = static_cast<uint64_t>(idc.seed);
    const int64_t rows = io::context_rows(id_source);
    if (rows >= 0 && idc.offset + N > rows) {
      throw ConfigError("config: identities.count = " + std::to_string(N) + " with offset " +
                        std::to_string(idc.offset) + " needs " + std::to_string(idc.offset + N) + " rows, but " +
                        idc.source + " has " + std::to_string(rows));
    }
    if (!pool_is_identity_set) {
      pool_source = io::parse_context_source(cfg.negatives.pool, base);
      pool_total = io::context_rows(pool_source);
      if (pool_total < 0) {
        throw ConfigError("config: negatives.pool must be a file (.h5 or .npy), not \"" + cfg.negatives.pool + "\"");
      }
    }
    const bool needs_two = strategy == negatives::Strategy::kFar || strategy == negatives::Strategy::kClose ||
                           strategy == negatives::Strategy::kMedian || strategy == negatives::Strategy::kRandom;
    if (needs_two && pool_is_identity_set && N < 2) {
      throw ConfigError("config: negatives.strategy = \"" + cfg.negatives.strategy +
                        "\" needs at least 2 identities (identities.count = 1)");
    }
  };
  agree(comm, "identities", [&] {
    try {
      validate_sources();
    } catch (const IoError& e) {
      // A missing or unreadable file named by the configuration is a configuration error (exit code 2).
      throw ConfigError(std::string("config: ") + e.what());
    }
  });

  ModelBundle mb;
  agree(comm, "model", [&] { mb = load_model(cfg, device); });
  const auto guidance = sampler::make_guidance_schedule(cfg.guidance.schedule, cfg.guidance.w, cfg.guidance.w_max);
  const bool ddim = cfg.sampler.kind == "ddim";
  std::vector<int64_t> timesteps;
  agree(comm, "sampler", [&] {
    if (ddim) {
      timesteps = sampler::ddim_timesteps(mb.schedule.T, cfg.sampler.steps);
    } else {
      if (cfg.sampler.steps != mb.schedule.T) {
        throw ConfigError("config: sampler.steps = " + std::to_string(cfg.sampler.steps) +
                          " but DDPM visits every one of the model's T = " + std::to_string(mb.schedule.T) +
                          " steps\n---> HINT: set sampler.steps = " + std::to_string(mb.schedule.T) +
                          " or use sampler.kind = \"ddim\"");
      }
      for (int64_t i = mb.schedule.T - 1; i >= 0; --i) timesteps.push_back(i);
    }
  });
  if (ddim && root && static_cast<int64_t>(timesteps.size()) != cfg.sampler.steps) {
    log::info("DDIM: sampler.steps = {} gives stride {} and {} visited timesteps", cfg.sampler.steps,
              mb.schedule.T / cfg.sampler.steps, timesteps.size());
  }
  std::vector<double> weights;
  for (int64_t i : timesteps) weights.push_back(guidance->weight(i, mb.schedule.T));

  // ---- identity of the run: file hashes (rank 0 reads each file once) and fingerprint ----------------
  std::map<std::string, std::string> attrs;
  agree(comm, "fingerprint", [&] {
    if (root) attrs = run_attributes(cfg, id_source, pool_is_identity_set ? nullptr : &pool_source, mb);
  });
  attrs = bcast_map(comm, attrs);

  // ---- the output file: new, or resumed when it belongs to this run (checked in --dry-run too) ------------
  // Rank 0 decides (ranks may see a shared file system differently) and everyone follows.
  const bool exists = comm.allreduce(root && fs::exists(cfg.output.path) ? 1 : 0, dist::ReduceOp::kMax) != 0;
  const bool start_new = !exists || opts.force_new || cfg.output.overwrite;
  RunLock lock;
  int64_t file_batch_size = 0;
  agree(comm, "output", [&] {
    check_not_an_input(cfg);
    if (!start_new && root) file_batch_size = check_same_run(cfg.output.path, attrs, cfg.output.file_locking);
    if (!opts.dry_run) {
      check_output_folder(cfg.output.path);
      if (root) lock.acquire(cfg.output.path);
    }
  });
  if (root && exists) {
    log::info(start_new ? "output: {} {} (--force-new / output.overwrite)" : "output: {} {} (same run)",
              opts.dry_run ? (start_new ? "would replace" : "would resume") : (start_new ? "replacing" : "resuming"),
              cfg.output.path);
  }
  file_batch_size = comm.allreduce(file_batch_size, dist::ReduceOp::kMax);
  const int64_t batch_size = compute_batch_size(start_new, file_batch_size, cfg.run.batch_size, opts.rebatch, root);
  attrs[kComputeBatchSize] = std::to_string(batch_size);  // recorded only when the file is created
  const Plan full = make_plan(N, K, all_samples(N * K), batch_size, timesteps, weights, world);
  if (root) print_plan(full, cfg, mb, *guidance, ddim);
  if (opts.dry_run) return JobSummary{};

  // ---- identities and negatives (distributed) -------------------------------------------------------
  const Span my_ids = full.rank_identities[static_cast<size_t>(rank)];
  torch::Tensor my_contexts, my_pool;
  Span my_pool_span = my_ids;
  agree(comm, "identities", [&] {
    my_contexts = io::read_contexts(id_source, idc.offset + my_ids.begin, idc.offset + my_ids.end, idc.context_dim);
    if (!pool_is_identity_set) {
      my_pool_span = dist::block_partition(pool_total, rank, world);
      my_pool = io::read_contexts(pool_source, my_pool_span.begin, my_pool_span.end, idc.context_dim);
    }
  });
  const auto t_neg = std::chrono::steady_clock::now();
  // Collective on every rank (inputs were validated above, so it does not throw on one rank alone).
  const negatives::Selection selection = dist::select_negatives_distributed(
      comm, my_contexts, my_ids.begin, pool_is_identity_set ? my_contexts : my_pool, my_pool_span.begin, pool_total,
      pool_is_identity_set, strategy, static_cast<uint64_t>(cfg.negatives.seed), cfg.negatives.block_rows);
  // Every rank needs the negatives of the identities its batches touch: share the small index array.
  std::vector<int64_t> all_negative_index(static_cast<size_t>(N), 0);
  const int64_t* mine = selection.negative_index.data_ptr<int64_t>();
  std::copy(mine, mine + my_ids.size(), all_negative_index.begin() + my_ids.begin);
  all_negative_index = comm.allreduce(all_negative_index, dist::ReduceOp::kSum);
  if (root) {
    log::info("negatives: '{}' selected for {} identities in {:.2f} s", cfg.negatives.strategy, N,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t_neg).count());
  }

  // ---- open or create the store (collective) --------------------------------------------------------------
  io::StoreLayout layout;
  layout.identities = N;
  layout.images_per_identity = K;
  layout.height = mb.image_height;
  layout.width = mb.image_width;
  layout.context_dim = idc.context_dim;
  layout.store_latents = cfg.output.store_latents;
  layout.latent_c = mb.latent_shape[0];
  layout.latent_h = mb.latent_shape[1];
  layout.latent_w = mb.latent_shape[2];
  io::StoreOptions store_options;
  store_options.file_locking = cfg.output.file_locking;
  std::unique_ptr<io::OutputStore> store;
  // A new file is made under a temporary name and renamed once its metadata are on disk, so a kill during
  // creation never leaves an unopenable file at output.path.
  const std::string creating = cfg.output.path + ".creating";
  agree(comm, "output", [&] {
    store = std::make_unique<io::OutputStore>(
        start_new ? io::OutputStore::create(comm.handle(), creating, layout, attrs, store_options)
                  : io::OutputStore::open_existing(comm.handle(), cfg.output.path, store_options));
    if (!start_new && store->layout() != layout) {
      throw IoError("output: " + cfg.output.path + " has another layout than this run (image or latent size)");
    }
  });
  if (start_new) {
    agree(comm, "output", [&] {
      if (root) fs::rename(creating, cfg.output.path);
    });
  }
  // From here on an error on one rank must not leave it in the store's collective close while the others
  // wait elsewhere: such errors abort the job (errors agreed by all ranks unwind normally).
  try {
    return sample_and_store(comm, cfg, mb, *guidance, device, ddim, batch_size, timesteps, weights, *store, my_ids,
                            my_contexts, my_pool, my_pool_span, pool_total, pool_is_identity_set, strategy,
                            selection, all_negative_index, start_new, id_source);
  } catch (const Error& e) {
    if (!e.on_all_ranks() && world > 1) {
      log::error("{}", e.what());
      comm.abort(static_cast<int>(ExitCode::kFailure));
    }
    throw;
  } catch (const std::exception& e) {
    if (world > 1) {
      log::error("unexpected failure: {}", e.what());
      comm.abort(static_cast<int>(ExitCode::kFailure));
    }
    throw;
  }
}

}  // namespace adaptdiff::job
