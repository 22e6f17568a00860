#include "contexts/negative_table.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "core/error.hpp"
#include "dist/agree.hpp"
#include "dist/distributed_negatives.hpp"
#include "dist/partition.hpp"

namespace adaptdiff::contexts {

NegativeTable select_negative_table(const dist::Comm& comm, const io::ContextSource& identities,
                                    negatives::Strategy strategy, uint64_t seed, int64_t width, int64_t block_rows) {
  int64_t n = 0;
  torch::Tensor mine;
  dist::Range span;
  dist::agree(comm, "identities", [&] {
    try {  // the identity file is the tool's input: one that cannot be read is bad input (exit 2)
      n = io::context_rows(identities);
      span = dist::block_partition(n, comm.rank(), comm.size());
      mine = io::read_contexts(identities, span.begin, span.end, width);
    } catch (const IoError& e) {
      throw InputError(e.what());
    }
  });
  const negatives::Selection sel = dist::select_negatives_distributed(comm, mine, span.begin, mine, span.begin, n,
                                                                      /*pool_is_identity_set=*/true, strategy, seed,
                                                                      block_rows);
  // Each rank contributes its rows; every other entry is 0, so the sums are exact.
  std::vector<int64_t> index(static_cast<size_t>(n), 0);
  std::vector<double> similarity(static_cast<size_t>(n), 0.0);
  for (int64_t a = 0; a < span.size(); ++a) {
    index[static_cast<size_t>(span.begin + a)] = sel.negative_index[a].item<int64_t>();
    similarity[static_cast<size_t>(span.begin + a)] = sel.negative_similarity[a].item<float>();
  }
  index = comm.allreduce(index, dist::ReduceOp::kSum);
  similarity = comm.allreduce(similarity, dist::ReduceOp::kSum);
  NegativeTable table;
  table.negative_index = torch::tensor(index, torch::kLong);
  table.negative_similarity = torch::tensor(similarity, torch::kDouble).to(torch::kFloat);
  return table;
}

std::string similarity_summary(const torch::Tensor& similarity) {
  const torch::Tensor s = similarity.to(torch::kFloat).contiguous();
  std::vector<float> v;
  for (int64_t k = 0; k < s.numel(); ++k) {
    const float x = s.data_ptr<float>()[k];
    if (std::isfinite(x)) v.push_back(x);
  }
  if (v.empty()) return "similarity: none";
  std::sort(v.begin(), v.end());
  char buf[128];
  std::snprintf(buf, sizeof buf, "similarity min / median / max: %.4f / %.4f / %.4f", v.front(), v[(v.size() - 1) / 2],
                v.back());
  return buf;
}

}  // namespace adaptdiff::contexts
