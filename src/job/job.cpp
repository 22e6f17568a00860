#include "job/job.hpp"

#include <dlfcn.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <torch/torch.h>

#include "adaptdiff/version.hpp"
#include "config/model_config.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "dist/comm.hpp"
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

/// Runs `fn` on every rank; if it throws on any rank, every rank throws the error of the lowest failing
/// rank (so no rank is left waiting in a later collective). COLLECTIVE.
template <typename Fn>
void agree(const dist::Comm& comm, const char* what, Fn&& fn) {
  std::string message;
  int kind = 0;  // 1 config, 2 input, 3 model, 4 io, 5 other
  try {
    fn();
  } catch (const ConfigError& e) {
    message = e.what(), kind = 1;
  } catch (const InputError& e) {
    message = e.what(), kind = 2;
  } catch (const ModelError& e) {
    message = e.what(), kind = 3;
  } catch (const IoError& e) {
    message = e.what(), kind = 4;
  } catch (const std::exception& e) {
    message = std::string(what) + ": " + e.what(), kind = 5;
  }
  const int64_t failing = comm.allreduce(kind != 0 ? comm.rank() : comm.size(), dist::ReduceOp::kMin);
  if (failing == comm.size()) return;
  message = comm.bcast(message, static_cast<int>(failing));
  const int64_t k = comm.allreduce(comm.rank() == failing ? kind : 0, dist::ReduceOp::kMax);
  if (comm.size() > 1) message = "[rank " + std::to_string(failing) + "] " + message;
  auto raise = [](auto e) {
    e.set_on_all_ranks();
    throw e;
  };
  switch (k) {
    case 1: raise(ConfigError(message));
    case 2: raise(InputError(message));
    case 3: raise(ModelError(message));
    case 4: raise(IoError(message));
    default: raise(Error(message));
  }
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
  agree(comm, "identities", [&] {
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
  const Plan plan = make_plan(N, K, cfg.run.batch_size, mb.schedule.T, ddim, timesteps, weights, world);

  // ---- the plan ---------------------------------------------------------------------------------------
  const double image_bytes = static_cast<double>(plan.samples) * mb.image_height * mb.image_width * 3;
  if (root) {
    log::info("plan: {} identities x {} images = {} samples, {} batches of {} on {} rank(s)", N, K, plan.samples,
              plan.batches, plan.batch_size, world);
    log::info("plan: {} {} steps per batch ({} guided with a 2B forward), {} forward rows per batch, "
              "guidance '{}', negatives '{}'",
              plan.forwards_per_batch(), ddim ? "DDIM" : "DDPM", plan.guided_steps, plan.rows_per_batch(),
              guidance->name(), cfg.negatives.strategy);
    for (int r = 0; r < world; ++r) {
      log::info("plan: rank {}: batches [{}, {}) ({} samples), identity shard [{}, {})", r,
                plan.rank_batches[r].begin, plan.rank_batches[r].end,
                std::min(plan.rank_batches[r].end * plan.batch_size, plan.samples) -
                    std::min(plan.rank_batches[r].begin * plan.batch_size, plan.samples),
                plan.rank_identities[r].begin, plan.rank_identities[r].end);
    }
    const double latent = static_cast<double>(mb.latent_shape[0] * mb.latent_shape[1] * mb.latent_shape[2]);
    const double per_rank_io = static_cast<double>(plan.batch_size) * (latent * 4 * 6 + mb.image_height *
                                                                           mb.image_width * (3 * 4 * 2 + 3));
    log::info("plan: output {} ({} of images), per-rank sampling buffers ~{} plus the model and its activations",
              cfg.output.path, human_bytes(image_bytes), human_bytes(per_rank_io));
  }
  if (opts.dry_run) return JobSummary{0, 0, 0.0, cfg.output.path};

  // ---- output file: refuse to clobber, check writability ----------------------------------------------
  agree(comm, "output", [&] {
    const fs::path out(cfg.output.path);
    if (fs::exists(out) && !cfg.output.overwrite) {
      throw IoError("output: " + cfg.output.path + " already exists; nothing was changed\n"
                    "---> HINT: choose another output.path, or set output.overwrite = true "
                    "(--set output.overwrite=true) to replace it");
    }
    const fs::path dir = out.has_parent_path() ? out.parent_path() : fs::path(".");
    std::error_code ec;
    fs::create_directories(dir, ec);  // every rank may try; the result is checked below
    if (!fs::is_directory(dir)) {
      throw IoError("output: cannot create folder " + dir.string() + (ec ? ": " + ec.message() : ""));
    }
    if (access(dir.c_str(), W_OK) != 0) throw IoError("output: folder " + dir.string() + " is not writable");
  });

  // ---- identities and negatives (distributed) -------------------------------------------------------
  const Span my_ids = plan.rank_identities[rank];
  torch::Tensor my_contexts;
  torch::Tensor my_pool;
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

  // ---- create the output file (collective) -------------------------------------------------------------
  std::map<std::string, std::string> attrs;
  attrs["adaptdiff_version"] = kVersion;
  attrs["layout_version"] = "1";
  attrs["config_toml"] = config::to_toml(cfg);
  for (const auto& [key, path] : {std::pair<std::string, std::string>{"architecture", cfg.model.architecture},
                                  {"unet", cfg.model.unet},
                                  {"decoder", cfg.model.decoder}}) {
    if (!path.empty() && !(key != "architecture" && cfg.model.init == "random")) {
      attrs["sha256_" + key] = io::sha256_file(path);
    }
  }
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
  agree(comm, "output", [&] {
    store = std::make_unique<io::OutputStore>(
        io::OutputStore::create(comm.handle(), cfg.output.path, layout, attrs, store_options));
  });
  store->write_contexts(my_ids.begin, my_contexts);
  store->write_negatives(my_ids.begin, selection.negative_index, selection.negative_similarity);

  // ---- sampling ---------------------------------------------------------------------------------------
  // Contexts of the identities this rank's batches touch, and of their negatives.
  const Span my_batches = plan.rank_batches[rank];
  Span touched{0, 0};
  if (my_batches.size() > 0) {
    touched.begin = plan.batch_samples(my_batches.begin).begin / K;
    touched.end = (plan.batch_samples(my_batches.end - 1).end - 1) / K + 1;
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

  const int64_t my_samples = my_batches.size() == 0 ? 0
                                                     : plan.batch_samples(my_batches.end - 1).end -
                                                           plan.batch_samples(my_batches.begin).begin;
  Progress progress(root, plan.samples, my_samples, cfg.run.progress_interval);
  sampler::ForwardCounter counter;
  int64_t written = 0;
  const auto t0 = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  for (int64_t b = my_batches.begin; b < my_batches.end; ++b) {
    const Span s = plan.batch_samples(b);
    const int64_t n = s.size();
    std::vector<int64_t> identity(static_cast<size_t>(plan.batch_size)), image(identity.size()), row(identity.size());
    std::vector<uint64_t> seeds(identity.size());
    for (int64_t r = 0; r < plan.batch_size; ++r) {
      const int64_t sample = s.begin + std::min(r, n - 1);  // pad a short last batch with its last sample
      identity[r] = sample / K;
      image[r] = sample % K;
      row[r] = identity[r] - touched.begin;
      seeds[r] = sampler::sample_seed(static_cast<uint64_t>(cfg.run.seed), idc.offset + identity[r], image[r]);
    }
    const torch::Tensor row_index = torch::tensor(row, torch::kInt64);
    torch::Tensor ctx_pos = pos_rows.index_select(0, row_index).to(f32);
    torch::Tensor ctx_neg = neg_rows.defined() ? neg_rows.index_select(0, row_index).to(f32) : torch::Tensor();

    sampler::BatchNoise noise(seeds, mb.latent_shape);
    torch::Tensor x = noise.next().to(device);
    const auto eps_fn = sampler::guided_eps(*mb.denoiser, ctx_pos, ctx_neg, *guidance, mb.schedule.T, &counter);
    const sampler::NoiseFn noise_fn = [&noise, &device](int64_t) { return noise.next().to(device); };
    torch::Tensor x0 = ddim ? sampler::sample_ddim(mb.schedule, eps_fn, x, cfg.sampler.steps, cfg.sampler.eta, noise_fn)
                            : sampler::sample_ddpm(mb.schedule, eps_fn, x, noise_fn);
    const torch::Tensor images = to_uint8_hwc(mb.decoder->decode(x0)).slice(0, 0, n);

    store->write_images(s.begin, images);
    store->write_samples_labels(s.begin, torch::tensor(identity, torch::kInt64).slice(0, 0, n),
                                torch::tensor(image, torch::kInt64).slice(0, 0, n));
    if (cfg.output.store_latents) store->write_latents(s.begin, x0.slice(0, 0, n).to(torch::kCPU).contiguous());
    written += n;
    progress.update(written);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  store->flush();
  store->close();

  JobSummary summary;
  summary.images_written = comm.allreduce(written, dist::ReduceOp::kSum);
  summary.forwards = comm.allreduce(counter.calls, dist::ReduceOp::kSum);
  summary.seconds = comm.allreduce(seconds, dist::ReduceOp::kMax);
  summary.output_path = cfg.output.path;
  if (root) {
    log::info("done: {} images ({} identities x {}) in {:.1f} s = {:.2f} images/s on {} rank(s); {} forward passes",
              summary.images_written, N, K, summary.seconds,
              summary.seconds > 0 ? summary.images_written / summary.seconds : 0.0, world, summary.forwards);
    log::info("wrote {} ({})", cfg.output.path, human_bytes(static_cast<double>(fs::file_size(cfg.output.path))));
  }
  return summary;
}

}  // namespace adaptdiff::job
