#include "eval/embed.hpp"

#include <torch/cuda.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/script.h>

#include <algorithm>
#include <vector>

#include "core/error.hpp"
#include "core/log.hpp"
#include "dist/agree.hpp"
#include "dist/comm.hpp"
#include "dist/partition.hpp"
#include "io/store_reader.hpp"
#include "core/progress.hpp"

namespace adaptdiff::eval {

namespace {

torch::Device pick_device(const std::string& name, const dist::Comm& comm) {
  if (name == "auto") return torch::cuda::is_available() ? pick_device("cuda", comm) : torch::Device(torch::kCPU);
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available()) {
      throw InputError("eval: --device " + name + " but this LibTorch build or machine has no CUDA device");
    }
    if (name == "cuda") {
      const auto count = static_cast<int>(torch::cuda::device_count());
      return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(comm.local_rank() % count));
    }
  }
  try {
    return torch::Device(name);
  } catch (const c10::Error&) {
    throw InputError("eval: --device '" + name + "' is not one of auto, cpu, cuda, cuda:N");
  }
}

torch::jit::Module load_model(const std::string& path, const torch::Device& device) {
  try {
    torch::jit::Module m = torch::jit::load(path, device);
    m.eval();
    return m;
  } catch (const c10::Error& e) {
    throw ModelError("eval: cannot load the TorchScript face-recognition model '" + path + "': " + e.what_without_backtrace());
  }
}

torch::Tensor forward(torch::jit::Module& model, const torch::Tensor& x, const std::string& path) {
  torch::IValue out;
  try {
    out = model.forward({x});
  } catch (const c10::Error& e) {
    throw ModelError("eval: forward of '" + path + "' on input float32 [" + std::to_string(x.size(0)) +
                     ", 3, 112, 112] failed: " + e.what_without_backtrace());
  }
  if (!out.isTensor()) throw ModelError("eval: forward of '" + path + "' must return a tensor [B, D]");
  torch::Tensor y = out.toTensor();
  if (y.dim() != 2 || y.size(0) != x.size(0) || y.size(1) < 1 || !y.is_floating_point()) {
    throw ModelError("eval: forward of '" + path + "' must return a float tensor [" + std::to_string(x.size(0)) +
                     ", D]; it returned " + std::string(c10::toString(y.scalar_type())) + " " + c10::str(y.sizes()));
  }
  return y.to(torch::kCPU, torch::kFloat32).contiguous();
}

// Element-wise exact sum over ranks of a float32 tensor whose entries are non-zero on one rank only, in
// chunks so that the double buffers stay small.
torch::Tensor assemble(const dist::Comm& comm, const torch::Tensor& local) {
  if (comm.size() == 1) return local;
  const torch::Tensor flat = local.flatten();
  const int64_t n = flat.numel(), chunk = int64_t{1} << 24;
  torch::Tensor out = torch::empty_like(flat);
  for (int64_t a = 0; a < n; a += chunk) {
    const int64_t b = std::min(n, a + chunk);
    const torch::Tensor part = flat.slice(0, a, b).to(torch::kFloat64).contiguous();
    std::vector<double> v(part.data_ptr<double>(), part.data_ptr<double>() + part.numel());
    v = comm.allreduce(v, dist::ReduceOp::kSum);
    out.slice(0, a, b).copy_(torch::from_blob(v.data(), {b - a}, torch::kFloat64));
  }
  return out.view(local.sizes());
}

}  // namespace

torch::Tensor preprocess_faces(const torch::Tensor& images, bool bgr) {
  if (images.scalar_type() != torch::kUInt8 || images.dim() != 4 || images.size(3) != 3) {
    throw InputError("eval: images must be uint8 [B, H, W, 3]; found " + std::string(c10::toString(images.scalar_type())) +
                     " " + c10::str(images.sizes()));
  }
  torch::Tensor x = images.permute({0, 3, 1, 2}).to(torch::kFloat32);
  if (x.size(2) != kFrInputSize || x.size(3) != kFrInputSize) {
    namespace F = torch::nn::functional;
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{kFrInputSize, kFrInputSize})
                              .mode(torch::kBilinear)
                              .align_corners(false)
                              .antialias(true));
  }
  if (bgr) x = x.flip({1});
  return ((x - 127.5f) / 127.5f).contiguous();
}

namespace {

/// The images of the done rows done[a..b) (ascending), read as contiguous runs so that rows that are not done
/// between them are never read: uint8 [b - a, H, W, 3].
torch::Tensor read_done_images(const io::StoreReader& store, const std::vector<int64_t>& done, int64_t a, int64_t b) {
  std::vector<torch::Tensor> runs;
  for (int64_t first = a; first < b;) {
    int64_t last = first + 1;
    while (last < b && done[last] == done[last - 1] + 1) ++last;
    runs.push_back(store.read_images(done[first], done[last - 1] + 1));
    first = last;
  }
  return runs.size() == 1 ? runs.front() : torch::cat(runs);
}

}  // namespace

Embedded embed_store(const dist::Comm& comm, const std::string& data_h5, const EmbedOptions& options) {
  Embedded result;
  std::unique_ptr<io::StoreReader> store;
  std::vector<int64_t> done;
  torch::Tensor labels;
  dist::agree(comm, "eval::open_images", [&] {
    try {  // a file that cannot be opened as a sampling output is bad input (exit 2), not a runtime failure
      store = std::make_unique<io::StoreReader>(data_h5);
    } catch (const IoError& e) {
      throw InputError(e.what());
    }
    const torch::Tensor checksum = store->read_int64("sample_checksum");
    labels = store->read_int64("identity");
    result.rows = checksum.numel();
    const torch::Tensor idx = checksum.ne(0).nonzero().flatten().contiguous();
    done.assign(idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + idx.numel());
    result.skipped = result.rows - static_cast<int64_t>(done.size());
    if (done.empty()) {
      throw InputError("eval: file '" + data_h5 + "' has no done sample (dataset 'sample_checksum' is 0 in all " +
                       std::to_string(result.rows) + " rows)");
    }
  });
  const auto m = static_cast<int64_t>(done.size());
  const dist::Range mine = dist::block_partition(m, comm.rank(), comm.size());
  torch::Tensor local;
  int64_t dim = 0;
  dist::agree(comm, "eval::embed", [&] {
    if (options.batch_size < 1) throw InputError("eval: --batch-size must be >= 1");
    const torch::Device device = pick_device(options.device, comm);
    if (comm.rank() == 0) log::info("embedding {} images with '{}' on {}", m, options.model_path, device.str());
    torch::jit::Module model = load_model(options.model_path, device);
    torch::NoGradGuard no_grad;
    Progress progress(comm.rank() == 0, m, 0, mine.size(), options.progress_interval);
    std::vector<torch::Tensor> parts;
    for (int64_t a = mine.begin; a < mine.end; a += options.batch_size) {
      const int64_t b = std::min(mine.end, a + options.batch_size);
      const torch::Tensor images = read_done_images(*store, done, a, b);
      parts.push_back(forward(model, preprocess_faces(images, options.bgr).to(device), options.model_path));
      progress.update(b - mine.begin);
    }
    if (!parts.empty()) {
      local = torch::cat(parts);
      dim = local.size(1);
      if (!local.isfinite().all().item<bool>()) throw ModelError("eval: '" + options.model_path + "' returned NaN/Inf");
    }
  });
  const int64_t d_max = comm.allreduce(dim, dist::ReduceOp::kMax);
  const int64_t d_min = comm.allreduce(dim > 0 ? dim : d_max, dist::ReduceOp::kMin);
  if (d_min != d_max) throw ModelError("eval: '" + options.model_path + "' returned embeddings of different widths");
  torch::Tensor all = torch::zeros({m, d_max}, torch::kFloat32);
  if (local.defined()) all.slice(0, mine.begin, mine.end).copy_(local);
  result.embeddings = assemble(comm, all);
  const torch::Tensor done_t = torch::tensor(done);
  result.identity = labels.index_select(0, done_t).contiguous();
  return result;
}

}  // namespace adaptdiff::eval
