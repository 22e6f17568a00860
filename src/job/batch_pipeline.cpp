#include "job/batch_pipeline.hpp"

#include <algorithm>
#include <filesystem>
#include <optional>

#include "core/error.hpp"
#include "core/stop.hpp"
#include "io/store.hpp"
#include "job/record.hpp"
#include "job/report.hpp"
#include "sampler/noise.hpp"
#include "sampler/samplers.hpp"

namespace adaptdiff::job {

namespace fs = std::filesystem;

namespace {
/// " (No space left on device: ...)" when the output's file system has less room than two batches.
std::string full_disk_note(const std::string& path, int64_t batch_bytes) {
  std::error_code ec;
  const auto space = fs::space(fs::absolute(path).parent_path(), ec);
  if (ec || space.available >= static_cast<uintmax_t>(2 * batch_bytes)) return "";
  return " (No space left on device: the file system of " + fs::absolute(path).parent_path().string() + " has " +
         human_bytes(static_cast<double>(space.available)) + " free)";
}
}  // namespace

namespace {
/// to_uint8_hwc on the image's own device.
torch::Tensor uint8_hwc_on_device(const torch::Tensor& image) {
  torch::Tensor v = ((image + 1) / 2).clamp(0, 1);
  v = (v * 255 + 0.5).clamp(0, 255).to(torch::kUInt8);
  return v.permute({0, 2, 3, 1}).contiguous();
}
}  // namespace

torch::Tensor to_uint8_hwc(const torch::Tensor& image) { return uint8_hwc_on_device(image).to(torch::kCPU); }

BatchPipeline::BatchPipeline(PipelineSetup setup, io::OutputStore& store)
    : s_(std::move(setup)), store_(store), staging_(s_.device) {}

BatchPipeline::Samples BatchPipeline::compute(const std::vector<int64_t>& rows) {
  const config::RunConfig& cfg = s_.cfg;
  const ModelBundle& mb = s_.model;
  const int64_t B = s_.batch_size, n = static_cast<int64_t>(rows.size());
  const int64_t K = cfg.identities.images_per_identity;
  std::vector<int64_t> identity(static_cast<size_t>(B)), image(identity.size()), local(identity.size());
  std::vector<uint64_t> seeds(identity.size());
  for (int64_t r = 0; r < B; ++r) {
    const int64_t s = rows[static_cast<size_t>(std::min(r, n - 1))];  // pad a short batch with its last sample
    identity[r] = s / K;
    image[r] = s % K;
    local[r] = identity[r] - s_.touched.begin;
    seeds[r] = sampler::sample_seed(static_cast<uint64_t>(cfg.run.seed), cfg.identities.offset + identity[r], image[r]);
  }
  torch::NoGradGuard no_grad;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(s_.device);
  const torch::Tensor index = torch::tensor(local, torch::kInt64);
  const torch::Tensor ctx_pos = s_.pos_rows.index_select(0, index).to(f32);
  const torch::Tensor ctx_neg = s_.neg_rows.defined() ? s_.neg_rows.index_select(0, index).to(f32) : torch::Tensor();

  std::optional<PhaseTimer> noise_timer(std::in_place, times_, Phase::kNoise);
  sampler::BatchNoise noise(seeds, mb.latent_shape);
  const torch::Tensor x_T = staging_.to_device(noise.next());
  noise_timer.reset();
  model::Denoiser& denoiser = *mb.denoiser;
  const sampler::DenoiseFn denoise = [&](const torch::Tensor& x_t, const torch::Tensor& t,
                                         const torch::Tensor& context) {
    PhaseTimer timer(times_, Phase::kDenoiser);
    return denoiser.eps(x_t, t, context);
  };
  const auto eps_fn = sampler::guided_eps(denoise, ctx_pos, ctx_neg, s_.guidance, mb.schedule.T, &counter_);
  const sampler::NoiseFn noise_fn = [&](int64_t) {
    PhaseTimer timer(times_, Phase::kNoise);
    return staging_.to_device(noise.next());
  };
  const sampler::StepObserver stop_check = [](int64_t, const torch::Tensor&) {
    if (stop::requested()) throw BatchAbandoned{};
  };
  // The update's share is the sampler's time less the network and noise calls it made.
  const double inner_before = times_[Phase::kDenoiser] + times_[Phase::kNoise];
  torch::Tensor x0;
  {
    PhaseTimer timer(times_, Phase::kUpdate);
    x0 = sampler::sample(s_.sampler, mb.schedule, eps_fn, x_T, noise_fn, stop_check);
  }
  times_[Phase::kUpdate] -= times_[Phase::kDenoiser] + times_[Phase::kNoise] - inner_before;
  Samples out;
  PhaseTimer decode_timer(times_, Phase::kDecoder);
  out.images = staging_.to_host(uint8_hwc_on_device(mb.decoder->decode(x0))).slice(0, 0, n);
  if (cfg.output.store_latents) out.latents = staging_.to_host(x0.slice(0, 0, n)).contiguous();
  out.identity.assign(identity.begin(), identity.begin() + n);
  out.image.assign(image.begin(), image.begin() + n);
  return out;
}

void BatchPipeline::store_samples(const std::vector<int64_t>& rows, const std::vector<int64_t>& to_write,
                                  const Samples& out) {
  const int64_t B = s_.batch_size, n = static_cast<int64_t>(rows.size());
  // Data first, then the record: a sample counts as done only once its data were written before it.
  std::vector<int64_t> sums(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    sums[j] = sample_checksum(out.images[j], out.identity[j], out.image[j], B,
                              out.latents.defined() ? out.latents[j] : torch::Tensor());
  }
  const torch::Tensor sums_t = torch::tensor(sums, torch::kInt64);
  const torch::Tensor ids = torch::tensor(out.identity, torch::kInt64);
  const torch::Tensor ks = torch::tensor(out.image, torch::kInt64);
  const torch::Tensor batch_sizes = torch::full({n}, B, torch::kInt64);
  try {
    // rows are consecutive, so the position of sample s in the batch is s - rows.front().
    for_each_run(to_write, B, [&](size_t a, int64_t m) {
      const int64_t s = to_write[a], j = s - rows.front();
      store_.write_images(s, out.images.slice(0, j, j + m));
      store_.write_samples_labels(s, ids.slice(0, j, j + m), ks.slice(0, j, j + m));
      store_.write_compute_batch_sizes(s, batch_sizes.slice(0, j, j + m));
      if (out.latents.defined()) store_.write_latents(s, out.latents.slice(0, j, j + m));
    });
    for_each_run(to_write, B, [&](size_t a, int64_t m) {
      const int64_t s = to_write[a], j = s - rows.front();
      store_.write_checksums(s, sums_t.slice(0, j, j + m));
    });
  } catch (const IoError& e) {
    throw IoError(std::string(e.what()) + full_disk_note(store_.path(), out.images.numel()));
  }
}

int64_t BatchPipeline::run(const std::vector<int64_t>& rows, const std::vector<int64_t>& to_write) {
  const Samples out = compute(rows);
  PhaseTimer timer(times_, Phase::kWrite);
  store_samples(rows, to_write, out);
  return static_cast<int64_t>(to_write.size());
}

}  // namespace adaptdiff::job
