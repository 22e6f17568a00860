#pragma once
// The run configuration of adaptdiff-sample (one TOML file; see configs/quickstart.toml and README.md).
// Names of existing keys never change: scripts and users depend on them.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace adaptdiff::config {

struct ModelSection {
  std::string kind = "idiff-face";  ///< "idiff-face" | "torchscript"
  std::string architecture;         ///< model TOML (idiff-face); absolute after loading
  std::string init = "checkpoint";  ///< "checkpoint" | "random" (seeded random weights: demo/tests only)
  int64_t init_seed = 0;            ///< seed of init = "random"
  std::string unet;                 ///< UNet checkpoint, or TorchScript denoiser for kind = "torchscript"
  std::string decoder;              ///< VQ decoder state dict, or TorchScript decoder
  // kind = "torchscript" only (no architecture file): latent shape, T and betas of the denoiser.
  int64_t latent_channels = 3, latent_height = 32, latent_width = 32;
  int64_t T = 1000;
  double beta_1 = 1e-4, beta_T = 0.02;
};

struct IdentitiesSection {
  std::string source = "synthetic_uniform";  ///< "synthetic_uniform" | path.h5[:/dataset] | path.npy
  int64_t count = 0;                          ///< identities to sample (N)
  int64_t offset = 0;                         ///< first row of the source to use
  int64_t images_per_identity = 0;            ///< K
  int64_t seed = 0;                           ///< synthetic_uniform seed
  int64_t context_dim = 512;
};

struct NegativesSection {
  std::string strategy = "far";  ///< far | close | median | random | zero | none
  std::string pool;              ///< "" = the identity set; else a source like identities.source (all rows)
  int64_t seed = 0;              ///< for strategy = "random"
  int64_t block_rows = 1024;     ///< rows per similarity block
};

struct GuidanceSection {
  std::string schedule = "linear";  ///< a name of sampler::guidance_schedule_names() (none, constant, linear, ...)
  /// The other keys of [guidance] (w, w_max, t_start, ...): finite numbers >= 0. Which ones a schedule reads,
  /// their defaults and further checks belong to the schedule (sampler/guidance.hpp).
  std::map<std::string, double> params;
};

struct SamplerSection {
  std::string kind = "ddpm";  ///< ddpm | ddim
  int64_t steps = 1000;       ///< ddim: upstream's ddim_step (stride T // steps); ddpm: must equal T
  double eta = 0.0;           ///< ddim only
};

struct RunSection {
  int64_t batch_size = 50;
  int64_t seed = 42;
  int64_t threads = 0;             ///< intra-op threads per rank; 0 = node cores / ranks on the node
  std::string device = "auto";     ///< auto | cpu | cuda
  std::string precision = "fp32";  ///< fp32 | bf16 | fp16 (CUDA only): the networks' arithmetic (native model only)
  bool cuda_graphs = false;        ///< on CUDA: replay the denoiser from CUDA graphs (model/cuda_graph.hpp)
  double progress_interval = 10.0; ///< seconds between progress lines
  double checkpoint_interval = 60.0; ///< seconds between collective flushes of the output (durable checkpoints)
  double signal_deadline = 20.0;   ///< seconds after SIGTERM/SIGUSR1 before exiting at once (<= 0: never)
  std::string log_level = "info";
};

struct OutputSection {
  std::string path = "out.h5";
  bool overwrite = false;       ///< replace an existing file (like --force-new) instead of resuming it
  bool store_latents = false;   ///< also write `latents` float32
  bool file_locking = true;     ///< false sets HDF5_USE_FILE_LOCKING=FALSE (NFS/Lustre)
};

/// A fully validated run configuration. Paths are absolute (resolved against the config file's folder).
struct RunConfig {
  ModelSection model;
  IdentitiesSection identities;
  NegativesSection negatives;
  GuidanceSection guidance;
  SamplerSection sampler;
  RunSection run;
  OutputSection output;
  std::string config_path;  ///< the file it came from
};

/// Reads `path`, applies `overrides` ("section.key=value", value in TOML syntax; a bare word is taken as a
/// string), validates every value and resolves relative paths against the config file's folder.
/// Throws ConfigError naming the file, key and line of the first problem (unknown keys: all of them).
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides = {});

/// The fully resolved configuration as TOML text (every key, defaults filled in, absolute paths).
/// Stored in the output file so a run can be reproduced.
std::string to_toml(const RunConfig& cfg);

}  // namespace adaptdiff::config
