#include "negatives/screened.hpp"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "negatives/similarity.hpp"

namespace adaptdiff::negatives {
namespace {

constexpr int64_t kQueryRows = 256;       // queries of one float32 product
constexpr int64_t kCandidateCols = 4096;  // candidates of one float32 product (a 4 MiB result)

/// a [m, D] · btᵀ with bt given transposed and contiguous, [D, n] → [m, n] float32, on all intra-op threads.
/// oneDNN's 1x1 convolution where LibTorch has it (it picks kernels by instruction set; BLAS builds may fall
/// back to generic kernels on processors they do not know), else BLAS. The same trick as model::pointwise.
torch::Tensor product(const torch::Tensor& a, const torch::Tensor& bt) {
  const int64_t m = a.size(0), D = a.size(1), n = bt.size(1);
  if (at::hasMKLDNN()) {
    return at::mkldnn_convolution(bt.view({1, D, n, 1}), a.view({m, D, 1, 1}), {}, {0, 0}, {1, 1}, {1, 1}, 1)
        .view({m, n});
  }
  return at::mm(a, bt);
}

/// The checks both folds start with: far or close, and normalised float64 CPU rows (outputs of normalize_rows).
/// who: the public function, named in the InputError.
void check_fold_inputs(const char* who, Strategy strategy, const torch::Tensor& q_hat, const torch::Tensor& c_hat) {
  if (strategy != Strategy::kFar && strategy != Strategy::kClose) {
    throw InputError(std::string(who) + ": strategy must be far or close, got " + to_string(strategy));
  }
  using Named = std::pair<const torch::Tensor*, const char*>;
  for (const auto& [t, what] : {Named{&q_hat, "queries"}, Named{&c_hat, "candidates"}}) {
    if (!t->defined() || t->dim() != 2 || t->scalar_type() != torch::kDouble || !t->device().is_cpu()) {
      throw InputError(std::string(who) + ": the normalised " + what +
                       " must be a 2-D float64 CPU tensor (output of normalize_rows)");
    }
  }
}

/// Candidates of one query that may still win: key = s (far) or −s (close), lowest first wins.
struct Shortlist {
  float lowest = std::numeric_limits<float>::infinity();
  std::vector<std::pair<float, int64_t>> entries;  // (key, global pool row), key ≤ lowest + margin when added
  size_t pruned_size = 0;

  void offer(float key, int64_t j, float margin) {
    if (key > lowest + margin) return;
    entries.emplace_back(key, j);
    if (key < lowest) lowest = key;
    if (entries.size() > 2 * pruned_size + 16) prune(margin);
  }
  void prune(float margin) {
    const float limit = lowest + margin;
    entries.erase(std::remove_if(entries.begin(), entries.end(), [&](const auto& e) { return e.first > limit; }),
                  entries.end());
    pruned_size = entries.size();
  }
};

}  // namespace

double screen_margin(int64_t D) {
  const double u = std::ldexp(1.0, -24);
  const double n = static_cast<double>(D + 3);
  const double delta = n * u / (1.0 - n * u);
  return 2.0 * delta + std::ldexp(1.0, -22);
}

void update_best_screened(Best& best, Strategy strategy, const torch::Tensor& q_hat, const torch::Tensor& c_hat,
                          int64_t candidate_offset, bool exclude_self) {
  check_fold_inputs("negatives::update_best_screened", strategy, q_hat, c_hat);
  const int64_t nq = q_hat.size(0), nc = c_hat.size(0), D = q_hat.size(1);
  if (nq != static_cast<int64_t>(best.index.size()) || (nc > 0 && c_hat.size(1) != D) || candidate_offset < 0) {
    throw InputError("negatives::update_best_screened: " + std::to_string(nq) + " queries of width " +
                     std::to_string(D) + " for a best of " + std::to_string(best.index.size()) + ", candidates [" +
                     std::to_string(candidate_offset) + ", +" + std::to_string(nc) + ") of width " +
                     std::to_string(c_hat.size(1)));
  }
  if (nq == 0 || nc == 0) return;
  const torch::Tensor q64 = q_hat.contiguous(), c64 = c_hat.contiguous();
  const torch::Tensor q32 = q64.to(torch::kFloat);
  std::vector<torch::Tensor> c32t;  // candidate chunks, float32, transposed: [D, <= kCandidateCols] each
  for (int64_t c0 = 0; c0 < nc; c0 += kCandidateCols) {
    c32t.push_back(c64.narrow(0, c0, std::min(kCandidateCols, nc - c0)).t().to(torch::kFloat).contiguous());
  }
  // A float32 margin is rounded up past the double one, so it never drops a candidate the bound keeps.
  const float margin = std::nextafter(static_cast<float>(screen_margin(D)), 1.0f);
  const float sign = strategy == Strategy::kFar ? 1.0f : -1.0f;
  for (int64_t r0 = 0; r0 < nq; r0 += kQueryRows) {
    const int64_t br = std::min(kQueryRows, nq - r0);
    std::vector<Shortlist> lists(static_cast<size_t>(br));
    const torch::Tensor q_block = q32.narrow(0, r0, br);
    for (size_t chunk = 0; chunk < c32t.size(); ++chunk) {
      const int64_t c0 = static_cast<int64_t>(chunk) * kCandidateCols, bc = c32t[chunk].size(1);
      const torch::Tensor s = product(q_block, c32t[chunk]).contiguous();  // [br, bc]
      const float* sd = s.data_ptr<float>();
      at::parallel_for(0, br, 8, [&](int64_t a_begin, int64_t a_end) {
        for (int64_t a = a_begin; a < a_end; ++a) {
          const int64_t self = exclude_self ? best.query_offset + r0 + a : -1;
          for (int64_t b = 0; b < bc; ++b) {
            const int64_t j = candidate_offset + c0 + b;
            if (j != self) lists[static_cast<size_t>(a)].offer(sign * sd[a * bc + b], j, margin);
          }
        }
      });
    }
    at::parallel_for(0, br, 8, [&](int64_t a_begin, int64_t a_end) {
      for (int64_t a = a_begin; a < a_end; ++a) {
        Shortlist& list = lists[static_cast<size_t>(a)];
        list.prune(margin);
        const auto row = static_cast<size_t>(r0 + a);
        const double* q_row = q64.data_ptr<double>() + (r0 + a) * D;
        for (const auto& [key, j] : list.entries) {
          const float sim = similarity_pair(q_row, c64.data_ptr<double>() + (j - candidate_offset) * D, D);
          if (replaces_best(strategy, sim, j, best.similarity[row], best.index[row])) {
            best.similarity[row] = sim;
            best.index[row] = j;
          }
        }
      }
    });
  }
}

namespace {

/// IEEE float32 products on CUDA for its lifetime (no TF32, matmul precision "highest"); restores the settings.
class ExactFloat32Products {
 public:
  explicit ExactFloat32Products(const torch::Device& device) : active_(device.is_cuda()) {
    if (!active_) return;
    at::Context& ctx = at::globalContext();
    tf32_ = ctx.allowTF32CuBLAS();
    precision_ = ctx.float32MatmulPrecision();
    ctx.setAllowTF32CuBLAS(false);
    ctx.setFloat32MatmulPrecision("highest");
  }
  ~ExactFloat32Products() {
    if (!active_) return;
    at::Context& ctx = at::globalContext();
    ctx.setFloat32MatmulPrecision(precision_ == at::Float32MatmulPrecision::HIGHEST ? "highest"
                                  : precision_ == at::Float32MatmulPrecision::HIGH  ? "high"
                                                                                    : "medium");
    ctx.setAllowTF32CuBLAS(tf32_);
  }
  ExactFloat32Products(const ExactFloat32Products&) = delete;
  ExactFloat32Products& operator=(const ExactFloat32Products&) = delete;

 private:
  bool active_;
  bool tf32_ = false;
  at::Float32MatmulPrecision precision_ = at::Float32MatmulPrecision::HIGHEST;
};

constexpr int64_t kDeviceQueryRows = 1024;  // queries of one device product ([1024, N] float32 keys)

}  // namespace

void update_best_screened_on_device(Best& best, Strategy strategy, const torch::Tensor& q_hat,
                                    const torch::Tensor& pool_hat, const torch::Tensor& pool32, bool exclude_self) {
  check_fold_inputs("negatives::update_best_screened_on_device", strategy, q_hat, pool_hat);
  const int64_t nq = q_hat.size(0), N = pool_hat.size(0), D = q_hat.size(1);
  if (nq != static_cast<int64_t>(best.index.size()) || (N > 0 && pool_hat.size(1) != D) || !pool32.defined() ||
      pool32.scalar_type() != torch::kFloat || pool32.sizes() != pool_hat.sizes()) {
    throw InputError("negatives::update_best_screened_on_device: " + std::to_string(nq) + " queries of width " +
                     std::to_string(D) + " for a best of " + std::to_string(best.index.size()) + ", a pool of " +
                     std::to_string(N) + " rows and float32 device rows " +
                     (pool32.defined() ? c10::str(pool32.sizes(), " ", pool32.scalar_type()) : "undefined"));
  }
  if (nq == 0 || N == 0) return;
  const torch::Device device = pool32.device();
  const ExactFloat32Products exact(device);
  const torch::Tensor q64 = q_hat.contiguous(), p64 = pool_hat.contiguous();
  const float margin = std::nextafter(static_cast<float>(screen_margin(D)), 1.0f);
  const float sign = strategy == Strategy::kFar ? 1.0f : -1.0f;
  const auto on_device = torch::TensorOptions().device(device);
  for (int64_t r0 = 0; r0 < nq; r0 += kDeviceQueryRows) {
    const int64_t br = std::min(kDeviceQueryRows, nq - r0);
    const torch::Tensor q32 = q64.narrow(0, r0, br).to(torch::kFloat).to(device);
    torch::Tensor key = at::mm(q32, pool32.t());  // [br, N]
    if (sign < 0) key.neg_();
    if (exclude_self) {  // the query's own pool row never wins: its key becomes +inf
      const torch::Tensor rows = torch::arange(br, on_device.dtype(torch::kLong));
      const torch::Tensor self = rows + (best.query_offset + r0);
      const torch::Tensor inside = self < N;
      key.index_put_({rows.masked_select(inside), self.masked_select(inside)},
                     torch::full({}, std::numeric_limits<float>::infinity(), on_device.dtype(torch::kFloat)));
    }
    const torch::Tensor lowest = std::get<0>(key.min(1, /*keepdim=*/true));
    const torch::Tensor pairs = (key <= lowest + margin).nonzero().to(torch::kCPU).contiguous();  // [k, 2] (a, j)
    const int64_t* pd = pairs.data_ptr<int64_t>();
    const int64_t k = pairs.size(0);
    for (int64_t e = 0; e < k; ++e) {
      const int64_t a = pd[2 * e], j = pd[2 * e + 1];
      if (exclude_self && j == best.query_offset + r0 + a) continue;  // a pool of one row: only itself
      const auto row = static_cast<size_t>(r0 + a);
      const float sim = similarity_pair(q64.data_ptr<double>() + (r0 + a) * D, p64.data_ptr<double>() + j * D, D);
      if (replaces_best(strategy, sim, j, best.similarity[row], best.index[row])) {
        best.similarity[row] = sim;
        best.index[row] = j;
      }
    }
  }
}

}  // namespace adaptdiff::negatives
