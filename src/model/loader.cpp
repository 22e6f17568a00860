#include "model/loader.hpp"
#include "model/parallel_ops.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "core/error.hpp"
#include "core/log.hpp"
#include "model/decoder.hpp"
#include "model/state_dict_keys.hpp"
#include "model/tensor_text.hpp"
#include "model/unet.hpp"

namespace adaptdiff::model {
namespace {

const char* kUNetPrefix = "eps_model.";

/// Saves the global CPU generator's state and restores it on scope exit, so that LibTorch's default parameter
/// initialisation during module construction does not shift the caller's random stream.
class GlobalRngRestore {
 public:
  GlobalRngRestore() : gen_(at::detail::getDefaultCPUGenerator()) {
    std::lock_guard<std::mutex> lock(gen_.mutex());
    state_ = gen_.get_state();
  }
  ~GlobalRngRestore() {
    std::lock_guard<std::mutex> lock(gen_.mutex());
    gen_.set_state(state_);
  }
  GlobalRngRestore(const GlobalRngRestore&) = delete;
  GlobalRngRestore& operator=(const GlobalRngRestore&) = delete;

 private:
  at::Generator gen_;
  at::Tensor state_;
};

std::string entry_text(const torch::Tensor& t) {
  return detail::shape_str(t.sizes()) + " " + detail::dtype_str(t.scalar_type());
}

torch::Tensor as_long_timesteps(const torch::Tensor& t, torch::Device device, const char* who) {
  if (!t.defined() || !(c10::isIntegralType(t.scalar_type(), /*includeBool=*/false)))
    throw InputError(std::string(who) + ": t must be an integer tensor of timestep indices, got " +
                     (t.defined() ? detail::dtype_str(t.scalar_type()) : std::string("an undefined tensor")));
  return t.to(device, torch::kLong);
}

// ---- native networks behind the interfaces ------------------------------------------------------------------

}  // namespace

void Denoiser::set_compute_dtype(torch::ScalarType dtype) {
  if (dtype == torch::kFloat) return;
  throw ModelError(std::string("run.precision: this denoiser runs in its own dtype; ") + c10::toString(dtype) +
                   " needs the native IDiff-Face model (model.kind = \"idiff-face\")");
}

void LatentDecoder::set_compute_dtype(torch::ScalarType dtype) {
  if (dtype == torch::kFloat) return;
  throw ModelError(std::string("run.precision: this decoder runs in its own dtype; ") + c10::toString(dtype) +
                   " needs the native VQ decoder (model.kind = \"idiff-face\")");
}

namespace {

void check_compute_dtype(torch::ScalarType dtype, const char* who, torch::Device device) {
  if (dtype != torch::kFloat && dtype != torch::kBFloat16 && dtype != torch::kHalf) {
    throw ModelError(std::string(who) + ": compute dtype must be float32, bfloat16 or float16, got " +
                     c10::toString(dtype));
  }
  if (dtype == torch::kHalf && !device.is_cuda()) {
    throw ModelError(std::string(who) + ": float16 runs on CUDA devices only (this rank runs on " + device.str() +
                     ")\n---> HINT: use run.precision = \"bf16\" or \"fp32\" on the CPU");
  }
  if (device.is_cpu() && !onednn_runs(dtype)) {
    throw ModelError(std::string(who) + ": this CPU (or this LibTorch build) has no fast " + c10::toString(dtype) +
                     " path (oneDNN with AVX-512, not capped by ONEDNN_MAX_CPU_ISA)\n---> HINT: use run.precision = \"fp32\"");
  }
}

class UNetDenoiser final : public Denoiser {
 public:
  UNetDenoiser(ConditionalUNet net, torch::Device device) : net_(std::move(net)), device_(device) {
    net_->to(device_);
    net_->eval();
  }
  torch::Tensor eps(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& context) override {
    torch::NoGradGuard no_grad;
    const torch::Tensor ctx = context.defined() ? context.to(device_, dtype_) : torch::Tensor();
    return net_->forward(x_t.to(device_, dtype_), as_long_timesteps(t, device_, "Denoiser::eps"), ctx)
        .to(torch::kFloat);
  }
  int64_t context_dim() const override { return net_->config().context_input_channels; }
  void set_compute_dtype(torch::ScalarType dtype) override {
    check_compute_dtype(dtype, "Denoiser::set_compute_dtype", device_);
    net_->to(dtype);
    dtype_ = dtype;
  }

 private:
  ConditionalUNet net_;
  torch::Device device_;
  torch::ScalarType dtype_ = torch::kFloat;
};

class VQLatentDecoder final : public LatentDecoder {
 public:
  VQLatentDecoder(VQDecoder net, torch::Device device) : net_(std::move(net)), device_(device) {
    net_->to(device_);
    net_->eval();
  }
  torch::Tensor decode(const torch::Tensor& z) override {
    torch::NoGradGuard no_grad;
    return net_->forward(z.to(device_, torch::kFloat));
  }
  void set_compute_dtype(torch::ScalarType dtype) override {
    check_compute_dtype(dtype, "LatentDecoder::set_compute_dtype", device_);
    net_->set_compute_dtype(dtype);
  }

 private:
  VQDecoder net_;
  torch::Device device_;
};

// ---- TorchScript behind the interfaces ----------------------------------------------------------------------

torch::jit::Module load_script(const std::string& path, torch::Device device, const char* who) {
  try {
    torch::jit::Module m = torch::jit::load(path, device);
    m.eval();
    return m;
  } catch (const c10::Error& e) {
    throw ModelError(std::string(who) + ": cannot load TorchScript file '" + path + "': " +
                     e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw ModelError(std::string(who) + ": cannot load TorchScript file '" + path + "': " + e.what());
  }
}

class ScriptDenoiser final : public Denoiser {
 public:
  ScriptDenoiser(torch::jit::Module m, std::string path, torch::Device device, int64_t context_dim)
      : m_(std::move(m)), path_(std::move(path)), device_(device), context_dim_(context_dim) {}

  torch::Tensor eps(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& context) override {
    torch::NoGradGuard no_grad;
    std::vector<c10::IValue> in{x_t.to(device_, torch::kFloat), as_long_timesteps(t, device_, "Denoiser::eps")};
    in.emplace_back(context.defined() ? c10::IValue(context.to(device_, torch::kFloat)) : c10::IValue());
    c10::IValue out;
    try {
      out = m_.forward(in);
    } catch (const c10::Error& e) {
      throw ModelError("TorchScript denoiser '" + path_ + "': forward failed: " + e.what_without_backtrace());
    } catch (const std::exception& e) {
      throw ModelError("TorchScript denoiser '" + path_ + "': forward failed: " + e.what());
    }
    if (!out.isTensor() || out.toTensor().sizes() != x_t.sizes() || !out.toTensor().is_floating_point())
      throw ModelError("TorchScript denoiser '" + path_ + "': forward returned " +
                       (out.isTensor() ? entry_text(out.toTensor()) : std::string(out.tagKind())) +
                       ", expected a floating eps of shape " + detail::shape_str(x_t.sizes()));
    return out.toTensor().to(torch::kFloat);
  }
  int64_t context_dim() const override { return context_dim_; }

 private:
  torch::jit::Module m_;
  std::string path_;
  torch::Device device_;
  int64_t context_dim_;
};

class ScriptDecoder final : public LatentDecoder {
 public:
  ScriptDecoder(torch::jit::Module m, std::string path, torch::Device device)
      : m_(std::move(m)), path_(std::move(path)), device_(device) {}

  torch::Tensor decode(const torch::Tensor& z) override {
    torch::NoGradGuard no_grad;
    c10::IValue out;
    try {
      out = m_.forward({z.to(device_, torch::kFloat)});
    } catch (const c10::Error& e) {
      throw ModelError("TorchScript decoder '" + path_ + "': forward failed: " + e.what_without_backtrace());
    } catch (const std::exception& e) {
      throw ModelError("TorchScript decoder '" + path_ + "': forward failed: " + e.what());
    }
    if (!out.isTensor() || out.toTensor().dim() != 4 || out.toTensor().size(0) != z.size(0) ||
        out.toTensor().size(1) != 3 || !out.toTensor().is_floating_point())
      throw ModelError("TorchScript decoder '" + path_ + "': forward returned " +
                       (out.isTensor() ? entry_text(out.toTensor()) : std::string(out.tagKind())) +
                       ", expected an image [" + std::to_string(z.size(0)) + ", 3, H, W]");
    return out.toTensor().to(torch::kFloat);
  }

 private:
  torch::jit::Module m_;
  std::string path_;
  torch::Device device_;
};

// ---- seeded random initialisation ---------------------------------------------------------------------------

/// Re-initialises every parameter of `root` from a private CPU generator seeded with `seed`, walking the modules
/// in registration order: conv/linear weights and biases U(+-1/sqrt(fan_in)) (LibTorch's default bound) times
/// `scale_of(module name)` for the weights, GroupNorm weight 1 / bias 0, embeddings N(0, 1). Throws ModelError
/// if a parameter is not covered (it would otherwise keep an unseeded default init).
template <typename ScaleFn>
void init_random(torch::nn::Module& root, uint64_t seed, ScaleFn scale_of) {
  torch::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::unordered_set<const void*> done;
  auto uniform = [&](torch::Tensor& t, double bound) {
    t.uniform_(-bound, bound, gen);
    done.insert(t.unsafeGetTensorImpl());
  };
  auto weight_and_bias = [&](torch::Tensor& w, torch::Tensor& b, double scale) {
    const int64_t fan_in = w.numel() / w.size(0);  // in * k... for conv/linear; out * k * k for transposed conv
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    uniform(w, bound);
    if (scale != 1.0) w.mul_(scale);
    if (b.defined()) uniform(b, bound);
  };
  for (const auto& item : root.named_modules("", /*include_self=*/false)) {
    torch::nn::Module& m = *item.value();
    const double scale = scale_of(item.key());
    if (auto* c = m.as<torch::nn::Conv2d>()) {
      weight_and_bias(c->weight, c->bias, scale);
    } else if (auto* c1 = m.as<torch::nn::Conv1d>()) {
      weight_and_bias(c1->weight, c1->bias, scale);
    } else if (auto* ct = m.as<torch::nn::ConvTranspose2d>()) {
      weight_and_bias(ct->weight, ct->bias, scale);
    } else if (auto* l = m.as<torch::nn::Linear>()) {
      weight_and_bias(l->weight, l->bias, scale);
    } else if (auto* g = m.as<torch::nn::GroupNorm>()) {
      g->weight.fill_(1.0);
      g->bias.fill_(0.0);
      done.insert(g->weight.unsafeGetTensorImpl());
      done.insert(g->bias.unsafeGetTensorImpl());
    } else if (auto* e = m.as<torch::nn::Embedding>()) {
      e->weight.normal_(0.0, 1.0, gen);
      done.insert(e->weight.unsafeGetTensorImpl());
    }
  }
  for (const auto& p : root.named_parameters(/*recurse=*/true))
    if (!done.count(p.value().unsafeGetTensorImpl()))
      throw ModelError("init_random: parameter '" + p.key() + "' is of a module type without a seeded init");
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string model_file_text(const config::ModelConfig& cfg) {
  return cfg.path.empty() ? std::string("the model description") : "'" + cfg.path + "'";
}

/// read_state_dict() and strip_wrapper_prefix(), saying in the log when a prefix was removed.
StateDict read_unwrapped_state_dict(const std::string& path) {
  StateDict sd = read_state_dict(path);
  const std::string removed = strip_wrapper_prefix(sd);
  if (!removed.empty())
    log::info("'{}': every key started with '{}' (a training wrapper's prefix); removed it from all {} keys", path,
              removed, sd.size());
  return sd;
}

}  // namespace

// ---- public API ---------------------------------------------------------------------------------------------

const std::vector<std::string>& schedule_buffer_names() {
  static const std::vector<std::string> names = {"betas",
                                                 "alphas",
                                                 "sigmas",
                                                 "sqrt_alphas_inv",
                                                 "alpha_bars",
                                                 "sqrt_alpha_bars",
                                                 "sqrt_one_minus_alpha_bars",
                                                 "one_minus_alphas_over_sqrt_one_minus_alpha_bars"};
  return names;
}

void load_strict(torch::nn::Module& module, const StateDict& dict, const std::string& what,
                 const std::string& hint) {
  std::vector<std::pair<std::string, torch::Tensor>> expected;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) expected.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) expected.emplace_back(b.key(), b.value());

  std::unordered_map<std::string, size_t> found;
  std::vector<std::string> duplicates;
  for (size_t i = 0; i < dict.size(); ++i)
    if (!found.emplace(dict[i].first, i).second) duplicates.push_back(dict[i].first);

  std::vector<std::string> missing, mismatched;
  std::unordered_set<std::string> known;
  for (const auto& [key, param] : expected) {
    known.insert(key);
    auto it = found.find(key);
    if (it == found.end()) {
      missing.push_back(key + " " + entry_text(param));
      continue;
    }
    const torch::Tensor& src = dict[it->second].second;
    if (!src.defined() || src.sizes() != param.sizes() || src.scalar_type() != param.scalar_type())
      mismatched.push_back(key + ": expected " + entry_text(param) + ", found " +
                           (src.defined() ? entry_text(src) : std::string("an undefined tensor")));
  }
  std::vector<std::string> unexpected;
  for (const auto& [key, value] : dict)
    if (!known.count(key)) unexpected.push_back(key + " " + (value.defined() ? entry_text(value) : std::string("?")));

  if (!missing.empty() || !unexpected.empty() || !mismatched.empty() || !duplicates.empty()) {
    std::vector<std::string> expected_keys;
    for (const auto& entry : expected) expected_keys.push_back(entry.first);
    const std::string diagnosis = diagnose_key_prefix(dict, expected_keys);
    std::string msg = "load_strict(" + what + "): " + (diagnosis.empty() ? "" : diagnosis + "; ") +
                      "the state dict does not match the model (" + std::to_string(missing.size()) + " missing, " +
                      std::to_string(unexpected.size()) + " unexpected, " + std::to_string(mismatched.size()) +
                      " shape/dtype mismatch" +
                      (duplicates.empty() ? "" : ", " + std::to_string(duplicates.size()) + " duplicated") +
                      "; model has " + std::to_string(expected.size()) + " entries, file " +
                      std::to_string(dict.size()) + ")";
    append_key_list(msg, "missing keys", missing);
    append_key_list(msg, "unexpected keys", unexpected);
    append_key_list(msg, "shape/dtype mismatches", mismatched);
    append_key_list(msg, "duplicated keys", duplicates);
    if (!hint.empty()) msg += "\n---> HINT: " + hint;
    throw ModelError(msg);
  }

  torch::NoGradGuard no_grad;
  for (auto& [key, param] : expected) param.copy_(dict[found.at(key)].second);
}

std::shared_ptr<Denoiser> load_idiff_face_unet(const config::ModelConfig& cfg, const std::string& ckpt_path,
                                               torch::Device device, StateDict* schedule_buffers_out) {
  StateDict sd = read_unwrapped_state_dict(ckpt_path);
  ConditionalUNet net{nullptr};
  {
    GlobalRngRestore keep_rng;
    net = ConditionalUNet(cfg.unet);
  }
  const std::string hint = "does the [unet] section of " + model_file_text(cfg) +
                           " describe this checkpoint? (expected the upstream DDPM-wrapper state dict with '" +
                           kUNetPrefix + "*' keys and the 8 schedule buffers of length T = " +
                           std::to_string(cfg.diffusion.T) + ", or a bare UNet state dict without the prefix)";
  bool wrapper = false;
  for (const auto& [key, value] : sd) wrapper = wrapper || key.rfind(kUNetPrefix, 0) == 0;

  if (schedule_buffers_out) schedule_buffers_out->clear();
  if (wrapper) {
    // The DDPM wrapper: schedule buffers (first in upstream's file order) + eps_model.*; strict like upstream.
    torch::nn::Module ddpm("DenoisingDiffusionProbabilisticModel");
    for (const auto& name : schedule_buffer_names()) ddpm.register_buffer(name, torch::zeros({cfg.diffusion.T}));
    ddpm.register_module("eps_model", net.ptr());
    load_strict(ddpm, sd, "'" + ckpt_path + "'", hint);
    if (schedule_buffers_out) {
      const auto& names = schedule_buffer_names();
      for (const auto& [key, value] : sd)
        if (std::find(names.begin(), names.end(), key) != names.end()) schedule_buffers_out->emplace_back(key, value);
    }
  } else {
    load_strict(*net, sd, "'" + ckpt_path + "'", hint);
  }
  sd.clear();
  return std::make_shared<UNetDenoiser>(net, device);
}

std::shared_ptr<LatentDecoder> load_vq_decoder(const config::ModelConfig& cfg, const std::string& path,
                                               torch::Device device) {
  return std::make_shared<VQLatentDecoder>(load_vq_decoder_module(cfg, path), device);
}

VQDecoder load_vq_decoder_module(const config::ModelConfig& cfg, const std::string& path) {
  StateDict sd = read_unwrapped_state_dict(path);
  VQDecoder net{nullptr};
  {
    GlobalRngRestore keep_rng;
    net = VQDecoder(cfg.decoder);
  }
  load_strict(*net, sd, "'" + path + "'",
              "does the [decoder] section of " + model_file_text(cfg) +
                  " describe this file? (expected keys decoder.*, quantize.embedding.weight [n_embed, embed_dim], "
                  "post_quant_conv.*)");
  sd.clear();
  net->eval();
  return net;
}

std::shared_ptr<Denoiser> random_idiff_face_unet(const config::ModelConfig& cfg, uint64_t seed,
                                                 torch::Device device) {
  ConditionalUNet net{nullptr};
  {
    GlobalRngRestore keep_rng;
    net = ConditionalUNet(cfg.unet);
  }
  // Convs upstream zero-initialises at training start get small (not zero) weights. Ref: spec 3.2/3.3.
  init_random(*net, seed, [](const std::string& name) {
    return ends_with(name, ".conv2") || ends_with(name, ".x_proj_out") ? 0.1 : 1.0;
  });
  return std::make_shared<UNetDenoiser>(net, device);
}

std::shared_ptr<LatentDecoder> random_vq_decoder(const config::ModelConfig& cfg, uint64_t seed,
                                                 torch::Device device) {
  VQDecoder net{nullptr};
  {
    GlobalRngRestore keep_rng;
    net = VQDecoder(cfg.decoder);
  }
  init_random(*net, seed, [](const std::string&) { return 1.0; });
  return std::make_shared<VQLatentDecoder>(net, device);
}

std::shared_ptr<Denoiser> load_torchscript_denoiser(const std::string& path, torch::Device device,
                                                    const TorchScriptProbe& probe) {
  torch::jit::Module m = load_script(path, device, "load_torchscript_denoiser");
  auto d = std::make_shared<ScriptDenoiser>(std::move(m), path, device, probe.context_dim);
  // Probe: batch 2 with fixed pseudo-random inputs (private generator, global RNG untouched).
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);
  const torch::Tensor x = torch::randn({2, probe.latent_channels, probe.latent_height, probe.latent_width}, gen);
  const torch::Tensor t = torch::full({2}, probe.t, torch::kLong);
  const torch::Tensor c = torch::randn({2, probe.context_dim}, gen);
  try {
    d->eps(x, t, c);
  } catch (const ModelError& e) {
    throw ModelError("load_torchscript_denoiser: probe forward of '" + path +
                     "' (x_t [2, C, H, W] f32, t [2] i64, context [2, Dctx] f32) failed: " + e.what() +
                     "\n---> HINT: the script must implement forward(x_t, t, context) -> eps of x_t's shape");
  }
  return d;
}

std::shared_ptr<LatentDecoder> load_torchscript_decoder(const std::string& path, torch::Device device,
                                                        const TorchScriptProbe& probe) {
  torch::jit::Module m = load_script(path, device, "load_torchscript_decoder");
  auto d = std::make_shared<ScriptDecoder>(std::move(m), path, device);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);
  const torch::Tensor z = torch::randn({2, probe.latent_channels, probe.latent_height, probe.latent_width}, gen);
  try {
    d->decode(z);
  } catch (const ModelError& e) {
    throw ModelError("load_torchscript_decoder: probe forward of '" + path + "' (z [2, C, h, w] f32) failed: " +
                     e.what() + "\n---> HINT: the script must implement forward(z) -> image [B, 3, H, W]");
  }
  return d;
}

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters(/*recurse=*/true)) n += p.numel();
  return n;
}

void check_schedule_buffers(const StateDict& expected, int64_t T, const StateDict& buffers,
                            const std::string& checkpoint_path, double rel_tol) {
  const StateDict& ours = expected;
  for (const auto& [name, stored] : buffers) {
    const torch::Tensor* expected = nullptr;
    for (const auto& [n, t] : ours) {
      if (n == name) expected = &t;
    }
    if (expected == nullptr) continue;  // not a schedule buffer we know; the loader decides about extras
    std::ostringstream os;
    if (stored.numel() != expected->numel()) {
      os << "model: checkpoint " << checkpoint_path << " has schedule buffer '" << name << "' of length "
         << stored.numel() << " but the model file describes T = " << T;
    } else {
      const auto ref = expected->to(torch::kFloat64);
      const double err = (stored.to(torch::kFloat64).reshape(ref.sizes()) - ref).abs().max().item<double>();
      const double scale = std::max(ref.abs().max().item<double>(), 1e-30);
      if (err / scale <= rel_tol) continue;
      os << "model: checkpoint " << checkpoint_path << " schedule buffer '" << name
         << "' differs from the model file's schedule (max relative error " << err / scale << " > " << rel_tol
         << ")";
    }
    os << "\n---> HINT: check [diffusion] T, beta_1, beta_T in the model file against the training config";
    throw ModelError(os.str());
  }
}

}  // namespace adaptdiff::model
