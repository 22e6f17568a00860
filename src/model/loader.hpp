#pragma once
// What the sampler sees of the networks: the abstract `Denoiser` (eps prediction) and `LatentDecoder`
// (latent -> image), and the factories that build them from upstream checkpoints, from seeded random weights
// (no-download demo), or from TorchScript files. Also the strict state-dict matcher shared by all loaders.
// Ref: ../shared/docs/idiff-face-model.md sections 1-4.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/model_config.hpp"
#include "model/checkpoint.hpp"
#include "model/decoder.hpp"

namespace adaptdiff::model {

/// Noise predictor eps(x_t, t, context). Implementations run without autograd, in eval mode, on their device.
class Denoiser {
 public:
  virtual ~Denoiser() = default;
  /// x_t [B,C,H,W] f32, t [B] int64, context [B,Dctx] f32 (undefined tensor = no context) -> eps [B,C,H,W] f32.
  /// Inputs may live on any device (they are moved to the model's device); the result is on the model's device.
  /// Throws InputError for shapes/dtypes that do not fit the model (native UNet), ModelError when a TorchScript
  /// model's forward fails or returns something other than a floating tensor of x_t's shape.
  virtual torch::Tensor eps(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& context) = 0;
  /// Width Dctx of the identity context the model expects (512 for IDiff-Face).
  virtual int64_t context_dim() const = 0;
  /// Runs the network in `dtype` (kFloat, kBFloat16, or kHalf on CUDA: weights converted once, inputs cast, eps returned as
  /// float32). Throws ModelError for TorchScript models (their dtype is theirs) and other dtypes.
  virtual void set_compute_dtype(torch::ScalarType dtype);
};

/// First-stage decoder turning a sampled latent into an image.
class LatentDecoder {
 public:
  virtual ~LatentDecoder() = default;
  /// z [B,C,h,w] f32 -> image [B,3,H,W] f32 roughly in [-1,1], on the model's device.
  virtual torch::Tensor decode(const torch::Tensor& z) = 0;
  /// As Denoiser::set_compute_dtype; the VQ quantiser (nearest codebook row) always stays in float32.
  virtual void set_compute_dtype(torch::ScalarType dtype);
};

/// Names of the 8 schedule buffers the DDPM-wrapper checkpoint stores (float32 [T]), in file order.
/// Ref: spec 1 and 6.1.
const std::vector<std::string>& schedule_buffer_names();

/// Strictly loads `dict` into `module` (parameters and buffers, recursively, by dotted name).
/// Collects every missing key, unexpected key, and shape/dtype mismatch (expected vs found) and throws ONE
/// ModelError "load_strict(<what>): ..." that starts with a one-line diagnosis when most keys share a prefix the
/// model does not have (diagnose_key_prefix), then lists them (at most 24 per kind, with the count of the rest),
/// followed by "---> HINT: <hint>" when `hint` is non-empty. Nothing is copied unless everything matches; values are copied into the existing parameters
/// (device conversion included, dtype must match exactly).
void load_strict(torch::nn::Module& module, const StateDict& dict, const std::string& what,
                 const std::string& hint = "");

/// Builds the ConditionalUNet of `cfg.unet` on `device` and loads `ckpt_path`: either the upstream DDPM-wrapper
/// checkpoint (`eps_model.*` + the 8 schedule buffers, all required) or a bare UNet state dict without the
/// prefix. A prefix that a training wrapper put on every key ("module.", "_forward_module.", "model."; see
/// strip_wrapper_prefix) is removed first and the log says so. The schedule buffers (CPU float32 [T], file order) are returned through `schedule_buffers_out` when
/// given (left empty for a bare dict); they are not part of the network.
/// Throws ModelError (file unreadable, or one message listing all key/shape/dtype problems with a hint naming
/// the model file).
std::shared_ptr<Denoiser> load_idiff_face_unet(const config::ModelConfig& cfg, const std::string& ckpt_path,
                                               torch::Device device, StateDict* schedule_buffers_out = nullptr);

/// Builds the VQ decoder of `cfg.decoder` on `device` and strictly loads `path`
/// (`decoder.*`, `quantize.embedding.weight`, `post_quant_conv.*`). Throws ModelError like load_idiff_face_unet.
std::shared_ptr<LatentDecoder> load_vq_decoder(const config::ModelConfig& cfg, const std::string& path,
                                               torch::Device device);

/// The VQ decoder module itself (CPU, eval mode), strictly loaded like load_vq_decoder(); for tools that
/// need more than decode(), e.g. adaptdiff-verify's codebook-index checks. Throws ModelError.
VQDecoder load_vq_decoder_module(const config::ModelConfig& cfg, const std::string& path);

/// ConditionalUNet of `cfg.unet` with deterministic seeded random weights (bit-identical weights for the same seed
/// on every run, rank and device: drawn on the CPU from a private generator, then moved; the global RNG is left
/// untouched).
/// Default-style init U(+-1/sqrt(fan_in)) for convs/linears, GroupNorm affine 1/0, and the convs upstream
/// zero-initialises (res `conv2`, attention `x_proj_out`) scaled by 0.1 so the net is not trivial.
std::shared_ptr<Denoiser> random_idiff_face_unet(const config::ModelConfig& cfg, uint64_t seed, torch::Device device);

/// VQ decoder of `cfg.decoder` with deterministic seeded random weights; codebook drawn N(0, 1) so that
/// quantisation of unit-scale latents is not degenerate.
std::shared_ptr<LatentDecoder> random_vq_decoder(const config::ModelConfig& cfg, uint64_t seed, torch::Device device);

/// Shapes used to probe TorchScript files on load (one forward of batch 2).
struct TorchScriptProbe {
  int64_t latent_channels = 3;
  int64_t latent_height = 32;
  int64_t latent_width = 32;
  int64_t context_dim = 512;  ///< denoiser only
  int64_t t = 500;            ///< timestep used in the probe, denoiser only
};

/// Loads a TorchScript denoiser whose `forward(x_t [B,C,H,W] f32, t [B] i64, context [B,Dctx] f32)` returns
/// eps [B,C,H,W] f32 (to accept "no context" its context argument must be Optional[Tensor]; None is passed).
/// Validated with a probe forward of shape `probe`; throws ModelError naming the file if it cannot be loaded,
/// the forward fails, or the output is not a floating tensor of the input's shape.
std::shared_ptr<Denoiser> load_torchscript_denoiser(const std::string& path, torch::Device device,
                                                    const TorchScriptProbe& probe = {});

/// Loads a TorchScript decoder whose `forward(z [B,C,h,w] f32)` returns an image [B,3,H,W] f32 in [-1,1].
/// Validated with a probe forward; throws ModelError naming the file on failure or a wrong output shape.
std::shared_ptr<LatentDecoder> load_torchscript_decoder(const std::string& path, torch::Device device,
                                                        const TorchScriptProbe& probe = {});

/// Number of scalar parameters (buffers excluded) of `module`, recursively.
int64_t parameter_count(const torch::nn::Module& module);

/// Compares the noise-schedule buffers found in a checkpoint (`buffers`, name -> float32 [T]) with the ones
/// the model file's schedule gives (`expected`, e.g. sampler::Schedule::checkpoint_buffers(), of length T).
/// Throws ModelError naming the first buffer of `expected` whose stored counterpart has another length or
/// differs by more than `rel_tol` (max |a-b| / max |b|), with a hint to check [diffusion] of the model file.
/// Buffers of `buffers` that `expected` does not name are ignored.
void check_schedule_buffers(const StateDict& expected, int64_t T, const StateDict& buffers,
                            const std::string& checkpoint_path, double rel_tol = 1e-5);

}  // namespace adaptdiff::model
