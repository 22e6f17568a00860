#include "config/run_config.hpp"

#include <cmath>
#include <filesystem>
#include <sstream>

#include "config/toml_reader.hpp"
#include "core/error.hpp"

namespace adaptdiff::config {

namespace fs = std::filesystem;

namespace {

// Sets "a.b.c = value" in `root`; value parsed as TOML, or taken as a string when it does not parse.
void apply_override(toml::table& root, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError("config: --set '" + assignment + "': expected section.key=value");
  }
  std::string key = assignment.substr(0, eq);
  std::string value = assignment.substr(eq + 1);
  auto trim = [](std::string& s) {
    s.erase(0, s.find_first_not_of(" \t"));
    s.erase(s.find_last_not_of(" \t") + 1);
  };
  trim(key);
  trim(value);
  toml::table parsed;
  try {
    parsed = parse_toml_text("v = " + value, "--set");
  } catch (const ConfigError&) {
    parsed = toml::table{{"v", value}};
  }
  toml::table* table = &root;
  std::string rest = key;
  for (auto dot = rest.find('.'); dot != std::string::npos; dot = rest.find('.')) {
    const std::string part = rest.substr(0, dot);
    rest = rest.substr(dot + 1);
    auto* next = table->get(part);
    if (next == nullptr) {
      table->insert(part, toml::table{});
      next = table->get(part);
    }
    if (!next->is_table()) throw ConfigError("config: --set '" + key + "': '" + part + "' is not a section");
    table = next->as_table();
  }
  table->insert_or_assign(rest, *parsed.get("v"));
}

std::string resolve(const std::string& p, const fs::path& base) {
  if (p.empty()) return p;
  fs::path path(p);
  if (path.is_absolute()) return path.lexically_normal().string();
  return (base / path).lexically_normal().string();
}

// Identity/pool sources: keep keywords, resolve paths (and keep a ":/dataset" suffix).
std::string resolve_source(const std::string& s, const fs::path& base) {
  if (s.empty() || s == "synthetic_uniform") return s;
  const auto colon = s.find(":/");
  if (colon != std::string::npos) return resolve(s.substr(0, colon), base) + s.substr(colon);
  return resolve(s, base);
}

template <typename T>
void check_in(const T& v, std::initializer_list<T> allowed, const TableReader& r, const std::string& key) {
  for (const auto& a : allowed) {
    if (v == a) return;
  }
  std::ostringstream os;
  os << "config: " << r.where(key) << ": '" << v << "' is not one of";
  for (const auto& a : allowed) os << " " << a;
  throw ConfigError(os.str());
}

void check(bool ok, const TableReader& r, const std::string& key, const std::string& what) {
  if (!ok) throw ConfigError("config: " + r.where(key) + ": " + what);
}

}  // namespace

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  if (!fs::exists(path)) throw ConfigError("config: file not found: " + path);
  toml::table root = parse_toml_file(path);
  for (const auto& o : overrides) apply_override(root, o);
  const fs::path base = fs::absolute(fs::path(path)).parent_path();

  RunConfig c;
  c.config_path = fs::absolute(fs::path(path)).lexically_normal().string();
  TableReader top(root, path, "");

  {
    TableReader r = top.section("model");
    auto& m = c.model;
    m.kind = r.get_string("kind").value_or(m.kind);
    check_in(m.kind, {std::string("idiff-face"), std::string("torchscript")}, r, "kind");
    m.init = r.get_string("init").value_or(m.init);
    check_in(m.init, {std::string("checkpoint"), std::string("random")}, r, "init");
    m.init_seed = r.get_int("init_seed").value_or(m.init_seed);
    m.architecture = resolve(r.get_string("architecture").value_or(""), base);
    m.unet = resolve(r.get_string("unet").value_or(""), base);
    m.decoder = resolve(r.get_string("decoder").value_or(""), base);
    m.latent_channels = r.get_int("latent_channels").value_or(m.latent_channels);
    m.latent_height = r.get_int("latent_height").value_or(m.latent_height);
    m.latent_width = r.get_int("latent_width").value_or(m.latent_width);
    m.T = r.get_int("T").value_or(m.T);
    m.beta_1 = r.get_double("beta_1").value_or(m.beta_1);
    m.beta_T = r.get_double("beta_T").value_or(m.beta_T);
    r.finish();
    if (m.kind == "idiff-face") {
      check(!m.architecture.empty(), r, "architecture", "is required for kind = \"idiff-face\" (a model TOML)");
      if (m.init == "checkpoint") {
        check(!m.unet.empty(), r, "unet", "is required (path to ema_averaged_model.ckpt)");
        check(!m.decoder.empty(), r, "decoder", "is required (path to first_stage_decoder_state_dict.pt)");
      }
    } else {
      check(m.init == "checkpoint", r, "init", "\"random\" is only available for kind = \"idiff-face\"");
      check(!m.unet.empty(), r, "unet", "is required (TorchScript denoiser file)");
      check(!m.decoder.empty(), r, "decoder", "is required (TorchScript decoder file)");
      check(m.latent_channels > 0 && m.latent_height > 0 && m.latent_width > 0, r, "latent_height",
            "latent shape must be positive");
      check(m.T >= 2, r, "T", "must be >= 2");
    }
  }
  {
    TableReader r = top.section("identities");
    auto& id = c.identities;
    id.source = resolve_source(r.get_string("source").value_or(id.source), base);
    id.count = r.require_int("count");
    id.offset = r.get_int("offset").value_or(0);
    id.images_per_identity = r.require_int("images_per_identity");
    id.seed = r.get_int("seed").value_or(0);
    id.context_dim = r.get_int("context_dim").value_or(512);
    r.finish();
    check(id.count > 0, r, "count", "must be > 0");
    check(id.offset >= 0, r, "offset", "must be >= 0");
    check(id.images_per_identity > 0, r, "images_per_identity", "must be > 0");
    check(id.context_dim > 0, r, "context_dim", "must be > 0");
  }
  {
    TableReader r = top.section("negatives");
    auto& n = c.negatives;
    n.strategy = r.get_string("strategy").value_or(n.strategy);
    // The name is checked by negatives::parse_strategy (the one table of strategies) before any work.
    n.pool = resolve_source(r.get_string("pool").value_or(""), base);
    n.seed = r.get_int("seed").value_or(0);
    n.block_rows = r.get_int("block_rows").value_or(n.block_rows);
    r.finish();
    check(n.block_rows > 0, r, "block_rows", "must be > 0");
  }
  {
    TableReader r = top.section("guidance");
    auto& g = c.guidance;
    g.schedule = r.get_string("schedule").value_or(g.schedule);
    // The schedule's name, the keys it reads and their ranges are checked by the schedule
    // (sampler::make_guidance_schedule); here they only have to be numbers.
    for (const std::string& key : r.keys()) {
      if (key != "schedule") g.params[key] = r.get_double(key).value_or(0.0);
    }
    r.finish();
  }
  {
    TableReader r = top.section("sampler");
    auto& s = c.sampler;
    s.kind = r.get_string("kind").value_or(s.kind);
    check_in(s.kind, {std::string("ddpm"), std::string("ddim")}, r, "kind");
    s.steps = r.get_int("steps").value_or(s.steps);
    s.eta = r.get_double("eta").value_or(s.eta);
    r.finish();
    check(s.steps >= 1, r, "steps", "must be >= 1");
    check(std::isfinite(s.eta) && s.eta >= 0.0, r, "eta", "must be >= 0");
    check(s.kind == "ddim" || s.eta == 0.0, r, "eta", "only applies to sampler.kind = \"ddim\"");
  }
  {
    TableReader r = top.section("run");
    auto& rn = c.run;
    rn.batch_size = r.get_int("batch_size").value_or(rn.batch_size);
    rn.seed = r.get_int("seed").value_or(rn.seed);
    rn.threads = r.get_int("threads").value_or(rn.threads);
    rn.device = r.get_string("device").value_or(rn.device);
    rn.precision = r.get_string("precision").value_or(rn.precision);
    rn.cuda_graphs = r.get_bool("cuda_graphs").value_or(rn.cuda_graphs);
    rn.progress_interval = r.get_double("progress_interval").value_or(rn.progress_interval);
    rn.checkpoint_interval = r.get_double("checkpoint_interval").value_or(rn.checkpoint_interval);
    rn.signal_deadline = r.get_double("signal_deadline").value_or(rn.signal_deadline);
    rn.log_level = r.get_string("log_level").value_or(rn.log_level);
    r.finish();
    check(rn.batch_size >= 1, r, "batch_size", "must be >= 1");
    check(rn.threads >= 0, r, "threads", "must be >= 0 (0 = automatic)");
    check_in(rn.device, {std::string("auto"), std::string("cpu"), std::string("cuda")}, r, "device");
    check_in(rn.precision, {std::string("fp32"), std::string("bf16"), std::string("fp16")}, r, "precision");
    check(rn.progress_interval > 0, r, "progress_interval", "must be > 0 seconds");
    check(rn.checkpoint_interval >= 0, r, "checkpoint_interval", "must be >= 0 seconds");
    check_in(rn.log_level, {std::string("debug"), std::string("info"), std::string("warn"), std::string("error")}, r,
             "log_level");
  }
  {
    TableReader r = top.section("output");
    auto& o = c.output;
    o.path = resolve(r.get_string("path").value_or(o.path), base);
    o.overwrite = r.get_bool("overwrite").value_or(o.overwrite);
    o.store_latents = r.get_bool("store_latents").value_or(o.store_latents);
    o.file_locking = r.get_bool("file_locking").value_or(o.file_locking);
    r.finish();
    check(!o.path.empty(), r, "path", "must not be empty");
  }
  top.finish();
  return c;
}

std::string to_toml(const RunConfig& c) {
  toml::table t{
      {"model", toml::table{{"kind", c.model.kind},
                            {"architecture", c.model.architecture},
                            {"init", c.model.init},
                            {"init_seed", c.model.init_seed},
                            {"unet", c.model.unet},
                            {"decoder", c.model.decoder}}},
      {"identities", toml::table{{"source", c.identities.source},
                                 {"count", c.identities.count},
                                 {"offset", c.identities.offset},
                                 {"images_per_identity", c.identities.images_per_identity},
                                 {"seed", c.identities.seed},
                                 {"context_dim", c.identities.context_dim}}},
      {"negatives", toml::table{{"strategy", c.negatives.strategy},
                                {"pool", c.negatives.pool},
                                {"seed", c.negatives.seed},
                                {"block_rows", c.negatives.block_rows}}},
      {"sampler", toml::table{{"kind", c.sampler.kind}, {"steps", c.sampler.steps}, {"eta", c.sampler.eta}}},
      {"run", toml::table{{"batch_size", c.run.batch_size},
                          {"seed", c.run.seed},
                          {"threads", c.run.threads},
                          {"device", c.run.device},
                          {"precision", c.run.precision},
                          {"cuda_graphs", c.run.cuda_graphs},
                          {"progress_interval", c.run.progress_interval},
                          {"checkpoint_interval", c.run.checkpoint_interval},
                          {"signal_deadline", c.run.signal_deadline},
                          {"log_level", c.run.log_level}}},
      {"output", toml::table{{"path", c.output.path},
                             {"overwrite", c.output.overwrite},
                             {"store_latents", c.output.store_latents},
                             {"file_locking", c.output.file_locking}}},
  };
  toml::table guidance{{"schedule", c.guidance.schedule}};
  for (const auto& [key, value] : c.guidance.params) guidance.insert(key, value);
  t.insert("guidance", std::move(guidance));
  if (c.model.kind == "torchscript") {
    auto* m = t["model"].as_table();
    m->insert("latent_channels", c.model.latent_channels);
    m->insert("latent_height", c.model.latent_height);
    m->insert("latent_width", c.model.latent_width);
    m->insert("T", c.model.T);
    m->insert("beta_1", c.model.beta_1);
    m->insert("beta_T", c.model.beta_T);
  }
  std::ostringstream os;
  os << t;
  return os.str();
}

}  // namespace adaptdiff::config
