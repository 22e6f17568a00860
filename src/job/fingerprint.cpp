#include "job/fingerprint.hpp"

#include <sstream>

#include "adaptdiff/version.hpp"
#include "config/model_config.hpp"
#include "core/error.hpp"
#include "dist/comm.hpp"
#include "io/sha256.hpp"
#include "io/store_reader.hpp"
#include "negatives/strategy.hpp"

namespace adaptdiff::job {

namespace {

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

}  // namespace

/// Root attributes of the output: resolved config, file hashes, version, and the fingerprint -- one
/// attribute per part of everything that changes the samples (compared on resume).
std::map<std::string, std::string> run_attributes(const config::RunConfig& cfg, const io::ContextSource& ids,
                                                  const io::ContextSource* pool, const ModelBundle& mb,
                                                  const sampler::GuidanceSchedule& guidance) {
  std::map<std::string, std::string> a;
  a["adaptdiff_version"] = kVersion;
  a[kLayoutVersion] = kLayoutVersionValue;
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
  if (cfg.run.precision != "fp32") model += ";precision=" + cfg.run.precision;  // fp32 files keep their fingerprint
  a["fingerprint.model"] = model;
  a["fingerprint.sampler"] = "kind=" + cfg.sampler.kind + ";steps=" + std::to_string(cfg.sampler.steps) +
                             (cfg.sampler.kind == "ddim" ? ";eta=" + number(cfg.sampler.eta) : "");
  a["fingerprint.guidance"] = guidance.fingerprint();
  a["fingerprint.negatives"] = negatives::fingerprint(negatives::parse_strategy(cfg.negatives.strategy),
                                                    static_cast<uint64_t>(cfg.negatives.seed),
                                                    pool != nullptr ? source_identity(*pool) : std::string());
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
    if (key.rfind("fingerprint.", 0) != 0 && key != kLayoutVersion) continue;
    const auto it = stored.find(key);
    const std::string old = it == stored.end() ? "(absent)" : it->second;
    if (old != value) diff += "\n  " + key.substr(key.find('.') + 1) + ": stored '" + old + "', this run '" + value + "'";
  }
  if (!diff.empty()) {
    // The configuration does not fit the output it names: a usage error (exit 2), like any other found before work.
    throw ConfigError("output: " + path + " was written by a different run; these parts differ:" + diff +
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

}  // namespace adaptdiff::job
