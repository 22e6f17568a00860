// adaptdiff-bench: the measured halves of the benchmarks in bench/ (bench/run.sh drives them and prints the tables).
//
//   adaptdiff-bench sampler   --arch TOML --unet CKPT --decoder DEC --inputs IN.h5 --out OUT.h5 --json T.json
//       The job's own sampling code (guided_eps + sample + the native model) on given x_T and contexts, timed per
//       DDIM step, then decoded: the counterpart of bench/reference/sampler.py on the same files.
//   mpiexec -n R adaptdiff-bench negatives --count N --json T.json
//       Far-Neg (or close) over N seeded unit embeddings with the job's distributed selection, against the float32
//       matrix-product floor and the exact float64 kernel, with the indices checked against brute force on rows.
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "adaptdiff/version.hpp"
#include "config/model_config.hpp"
#include "core/error.hpp"
#include "dist/comm.hpp"
#include "dist/distributed_negatives.hpp"
#include "dist/mpi_environment.hpp"
#include "dist/partition.hpp"
#include "io/h5_reader.hpp"
#include "io/small_file.hpp"
#include "model/cuda_graph.hpp"
#include "model/loader.hpp"
#include "negatives/negatives.hpp"
#include "sampler/guidance.hpp"
#include "sampler/samplers.hpp"
#include "sampler/schedule.hpp"

namespace {

using namespace adaptdiff;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

std::string json_list(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// ---- sampler --------------------------------------------------------------------------------------------------

struct SamplerArgs {
  std::string arch, unet, decoder, inputs, out, json, schedule = "linear", precision = "fp32", device = "cpu";
  int64_t steps = 10;
  double w = 0.5, w_max = 1.0;
  int threads = 0, rounds = 1;
  bool no_decode = false, cuda_graphs = false;
};

/// Resident set size of this process now, and its peak, in MiB (Linux /proc).
double resident_mib() {
  std::ifstream statm("/proc/self/statm");
  double pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}
double peak_mib() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

int run_sampler(const SamplerArgs& a) {
  if (a.threads > 0) torch::set_num_threads(a.threads);
  torch::NoGradGuard no_grad;
  const config::ModelConfig mc = config::load_model_config(a.arch);
  const auto schedule = sampler::Schedule::linear(mc.diffusion.T, mc.diffusion.beta_1, mc.diffusion.beta_T);
  const torch::Device device(a.device);
  std::shared_ptr<model::Denoiser> unet = model::load_idiff_face_unet(mc, a.unet, device);
  const auto decoder = a.no_decode ? nullptr : model::load_vq_decoder(mc, a.decoder, device);
  if (a.precision != "fp32") {
    const torch::ScalarType dtype = a.precision == "bf16" ? torch::kBFloat16 : torch::kHalf;
    unet->set_compute_dtype(dtype);
    if (decoder) decoder->set_compute_dtype(dtype);
  }
  if (a.cuda_graphs) unet = model::replay_in_cuda_graphs(unet, device);
  // Step times must include the device's work: wait for it at every step boundary on CUDA.
  const auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize(device.index());
  };
  const io::H5Reader in(a.inputs);
  const torch::Tensor x_T = in.read("x_T").to(device, torch::kFloat);
  const torch::Tensor pos = in.read("context_pos").to(device, torch::kFloat);
  const bool guided = a.schedule != "none";
  const torch::Tensor neg = guided ? in.read("context_neg").to(device, torch::kFloat) : torch::Tensor();
  const auto guidance = sampler::make_guidance_schedule(a.schedule, a.w, a.w_max);

  std::vector<double> step_seconds;
  auto last = Clock::now();
  const auto start = last;
  const sampler::DenoiseFn denoise = [&](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& c) {
    return unet->eps(x, t, c);
  };
  const auto eps_fn = sampler::guided_eps(denoise, pos, neg, *guidance, schedule.T);
  const sampler::StepObserver on_step = [&](int64_t, const torch::Tensor&) {
    sync();
    step_seconds.push_back(seconds_since(last));
    last = Clock::now();
  };
  const sampler::SamplerSpec spec{sampler::SamplerSpec::Kind::kDdim, a.steps, 0.0};
  torch::Tensor x0, decoded;
  double decode_seconds = 0.0;
  std::vector<double> rss_mib;  // after each round: flat when nothing accumulates
  for (int round = 0; round < std::max(1, a.rounds); ++round) {
    last = Clock::now();
    x0 = sampler::sample(spec, schedule, eps_fn, x_T, {}, on_step);
    const auto decode_start = Clock::now();
    if (decoder) decoded = decoder->decode(x0);
    sync();
    decode_seconds = decoder ? seconds_since(decode_start) : 0.0;
    rss_mib.push_back(resident_mib());
  }
  const double total = seconds_since(start);

  io::SmallFile out;
  out.arrays.emplace_back("x0", x0.to(torch::kCPU).contiguous());
  if (decoded.defined()) out.arrays.emplace_back("decoded", decoded.to(torch::kCPU).contiguous());
  if (!a.out.empty()) io::write_small_file(a.out, out);
  std::ofstream(a.json) << "{\"threads\": " << at::get_num_threads() << ", \"precision\": \"" << a.precision
                        << "\", \"device\": \"" << device.str() << "\", \"cuda_graphs\": " << (a.cuda_graphs ? "true" : "false")
                        << ", \"batch\": " << x_T.size(0)
                        << ", \"steps\": " << step_seconds.size() << ", \"forwards_per_step\": 1"
                        << ", \"rows_per_forward\": " << (guided ? 2 : 1) * x_T.size(0)
                        << ", \"step_seconds\": " << json_list(step_seconds)
                        << ", \"decode_seconds\": " << decode_seconds << ", \"total_seconds\": " << total
                        << ", \"rounds\": " << rss_mib.size() << ", \"rss_mib\": " << json_list(rss_mib)
                        << ", \"peak_rss_mib\": " << peak_mib() << "}\n";
  std::printf("batch %lld, %zu steps, %d thread(s): median step %.3f s, decode %.3f s, total %.3f s\n",
              static_cast<long long>(x_T.size(0)), step_seconds.size(), at::get_num_threads(), median(step_seconds),
              decode_seconds, total);
  return 0;
}

// ---- negatives ------------------------------------------------------------------------------------------------

struct NegativesArgs {
  int64_t count = 10000, dim = 512, check_rows = 64, exact_rows = 256, floor_rows = 4096;
  uint64_t seed = 0;
  std::string strategy = "far", json;
  int repeat = 3, threads = 0;
};

/// Unit rows [first, first + n) of the seeded set: row i is a standard normal vector drawn from its own
/// generator (seed, i), so any rank can make any rows.
torch::Tensor embedding_rows(uint64_t seed, int64_t first, int64_t n, int64_t dim) {
  torch::Tensor out = torch::empty({n, dim});
  for (int64_t i = 0; i < n; ++i) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed * 1000003ULL + static_cast<uint64_t>(first + i));
    out[i].copy_(at::randn({dim}, gen));
  }
  return out / out.norm(2, 1, true);
}

int run_negatives(const dist::Comm& comm, const NegativesArgs& a) {
  const bool root = comm.rank() == 0;
  torch::set_num_threads(a.threads > 0 ? a.threads
                                       : std::max<int>(1, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)) /
                                                              std::max(1, comm.local_size())));
  const dist::Range mine = dist::block_partition(a.count, comm.rank(), comm.size());
  const torch::Tensor my_rows = embedding_rows(a.seed, mine.begin, mine.size(), a.dim);
  const auto strategy = negatives::parse_strategy(a.strategy);

  std::vector<double> selection_s;
  negatives::Selection sel;
  for (int r = 0; r < a.repeat; ++r) {
    comm.barrier();
    const auto t0 = Clock::now();
    sel = dist::select_negatives_distributed(comm, my_rows, mine.begin, my_rows, mine.begin, a.count, true, strategy, 0);
    selection_s.push_back(comm.allreduce(seconds_since(t0), dist::ReduceOp::kMax));
  }
  // The float32 product of this rank's rows with all N rows, in blocks of 256 x 4096 (the FLOPs and shapes of
  // the selection's screen) with LibTorch's own threading: BLAS (torch::mm) and oneDNN (a 1x1 convolution).
  // The faster of the two is the floor.
  const torch::Tensor all_rows = embedding_rows(a.seed, 0, a.count, a.dim);
  std::vector<torch::Tensor> chunks;
  for (int64_t c0 = 0; c0 < a.count; c0 += 4096)
    chunks.push_back(all_rows.narrow(0, c0, std::min<int64_t>(4096, a.count - c0)).t().contiguous());
  // Every query row costs the same: the product is timed on at most floor_rows rows and scaled to all.
  const int64_t floor_rows = std::min(a.floor_rows, mine.size());
  const double scale = static_cast<double>(mine.size()) / static_cast<double>(std::max<int64_t>(1, floor_rows));
  const auto time_product = [&](bool onednn) {
    std::vector<double> t;
    for (int r = 0; r < a.repeat; ++r) {
      comm.barrier();
      const auto t0 = Clock::now();
      for (int64_t r0 = 0; r0 < floor_rows; r0 += 256) {
        const torch::Tensor q = my_rows.narrow(0, r0, std::min<int64_t>(256, floor_rows - r0)).contiguous();
        for (const auto& c : chunks) {
          const torch::Tensor s = onednn ? at::mkldnn_convolution(c.view({1, a.dim, c.size(1), 1}),
                                                                  q.view({q.size(0), a.dim, 1, 1}), {}, {0, 0},
                                                                  {1, 1}, {1, 1}, 1)
                                         : torch::mm(q, c);
          (void)s;
        }
      }
      t.push_back(comm.allreduce(seconds_since(t0) * scale, dist::ReduceOp::kMax));
    }
    return t;
  };
  const std::vector<double> blas_s = time_product(false);
  const std::vector<double> onednn_s = at::hasMKLDNN() ? time_product(true) : blas_s;
  const std::vector<double> floor_s = median(onednn_s) < median(blas_s) ? onednn_s : blas_s;
  // The exact float64 kernel on the first rows of this rank, scaled to all of them (the previous method).
  const torch::Tensor all_hat = negatives::normalize_rows(all_rows, "rows");
  const int64_t er = std::min(a.exact_rows, mine.size());
  const auto t_exact = Clock::now();
  const torch::Tensor exact = negatives::similarity_block(all_hat.narrow(0, mine.begin, er), all_hat);
  const double exact_s = comm.allreduce(seconds_since(t_exact) * static_cast<double>(mine.size()) / std::max<int64_t>(1, er),
                                        dist::ReduceOp::kMax);
  // Brute force on check_rows rows: exact similarities of every pair, lowest (far) / highest (close), lowest index.
  int64_t mismatches = 0;
  for (int64_t a_row = 0; a_row < std::min(a.check_rows, er); ++a_row) {
    negatives::Best best = negatives::make_best(1, mine.begin + a_row);
    negatives::update_best(best, strategy, exact.narrow(0, a_row, 1), 0, 0, true);
    mismatches += best.index[0] != sel.negative_index[a_row].item<int64_t>();
  }
  mismatches = comm.allreduce(mismatches, dist::ReduceOp::kSum);
  if (root) {
    std::printf("N %lld x %lld, %d rank(s) x %d thread(s): selection %.3f s, float32 product %.3f s, exact float64 "
                "kernel %.1f s (extrapolated), brute-force mismatches %lld\n",
                static_cast<long long>(a.count), static_cast<long long>(a.dim), comm.size(), at::get_num_threads(),
                median(selection_s), median(floor_s), exact_s, static_cast<long long>(mismatches));
    std::ofstream(a.json) << "{\"count\": " << a.count << ", \"dim\": " << a.dim << ", \"ranks\": " << comm.size()
                          << ", \"threads\": " << at::get_num_threads() << ", \"selection_seconds\": "
                          << json_list(selection_s) << ", \"floor_seconds\": " << json_list(floor_s)
                          << ", \"blas_product_seconds\": " << json_list(blas_s)
                          << ", \"onednn_product_seconds\": " << json_list(onednn_s)
                          << ", \"exact_kernel_seconds\": " << exact_s << ", \"checked_rows\": "
                          << std::min(a.check_rows, er) * comm.size() << ", \"mismatches\": " << mismatches << "}\n";
  }
  return mismatches == 0 ? 0 : 4;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"adaptdiff-bench: timed runs for the benchmarks of bench/ (see bench/README.md)"};
  app.set_version_flag("--version", std::string("adaptdiff-bench ") + kVersion);
  app.require_subcommand(1);
  SamplerArgs sa;
  auto* s = app.add_subcommand("sampler", "guided DDIM + decode of the job's code on given inputs, timed per step");
  s->add_option("--arch", sa.arch, "model TOML")->required();
  s->add_option("--unet", sa.unet, "UNet checkpoint")->required();
  s->add_option("--decoder", sa.decoder, "decoder checkpoint");
  s->add_option("--inputs", sa.inputs, "HDF5 with x_T, context_pos, context_neg")->required();
  s->add_option("--out", sa.out, "HDF5 to write x0 and decoded to");
  s->add_option("--json", sa.json, "timing JSON")->required();
  s->add_option("--steps", sa.steps, "DDIM steps setting (stride T // steps)");
  s->add_option("--schedule", sa.schedule, "guidance schedule: none, constant, linear");
  s->add_option("--w", sa.w, "w of constant");
  s->add_option("--w-max", sa.w_max, "w_max of linear");
  s->add_option("--threads", sa.threads, "intra-op threads (0: LibTorch's default)");
  s->add_flag("--no-decode", sa.no_decode, "skip decoding");
  s->add_option("--precision", sa.precision, "fp32, bf16 or fp16 (CUDA) (the networks' arithmetic)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  s->add_option("--device", sa.device, "cpu, cuda or cuda:N");
  s->add_flag("--cuda-graphs", sa.cuda_graphs, "replay the denoiser from CUDA graphs (CUDA builds)");
  s->add_option("--rounds", sa.rounds, "sample the same batch this many times (RSS recorded after each)");
  NegativesArgs na;
  auto* n = app.add_subcommand("negatives", "distributed Far-Neg against the float32 product floor (MPI)");
  n->add_option("--count", na.count, "identities N");
  n->add_option("--dim", na.dim, "embedding width");
  n->add_option("--strategy", na.strategy, "far or close");
  n->add_option("--seed", na.seed, "seed of the embeddings");
  n->add_option("--repeat", na.repeat, "timed repetitions (median reported)");
  n->add_option("--check-rows", na.check_rows, "rows per rank checked against brute force");
  n->add_option("--exact-rows", na.exact_rows, "rows per rank timed with the exact float64 kernel");
  n->add_option("--floor-rows", na.floor_rows, "rows per rank of the timed float32 products (scaled to all)");
  n->add_option("--threads", na.threads, "intra-op threads per rank (0: the node's cores / ranks on the node)");
  n->add_option("--json", na.json, "result JSON (rank 0)")->required();
  CLI11_PARSE(app, argc, argv);
  try {
    if (s->parsed()) {
      if (!sa.no_decode && sa.decoder.empty()) throw ConfigError("sampler: --decoder is required unless --no-decode");
      return run_sampler(sa);
    }
    dist::MpiEnvironment env(&argc, &argv);
    return run_negatives(env.world(), na);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "adaptdiff-bench: %s\n", e.what());
    return 1;
  }
}
