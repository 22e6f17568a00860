#include "job/model_bundle.hpp"

#include <filesystem>

#include "config/model_config.hpp"
#include "core/error.hpp"
#include "dist/comm.hpp"
#include "model/cuda_graph.hpp"

namespace adaptdiff::job {

namespace fs = std::filesystem;

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

namespace {
void require_file(const std::string& path, const std::string& key) {
  if (!fs::is_regular_file(path)) {
    throw ConfigError("config: " + key + " = \"" + path + "\": file not found");
  }
}

}  // namespace

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
      model::check_schedule_buffers(b.schedule.checkpoint_buffers(), b.schedule.T, buffers, m.unet);
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
  if (cfg.run.precision != "fp32") {  // the networks' arithmetic; the sampler's update stays float32
    const torch::ScalarType dtype = cfg.run.precision == "bf16" ? torch::kBFloat16 : torch::kHalf;
    b.denoiser->set_compute_dtype(dtype);
    b.decoder->set_compute_dtype(dtype);
  }
  if (cfg.run.cuda_graphs && device.is_cuda()) b.denoiser = model::replay_in_cuda_graphs(b.denoiser, device);
  return b;
}

}  // namespace adaptdiff::job
