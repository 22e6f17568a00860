#include "job/inputs.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>

#include "core/error.hpp"
#include "core/log.hpp"
#include "dist/agree.hpp"
#include "dist/comm.hpp"
#include "dist/distributed_negatives.hpp"

namespace adaptdiff::job {

namespace fs = std::filesystem;

namespace {

// Reads rows [range) of a file source in chunks and validates them (width, finite, non-zero), so that a bad
// row is reported before the model loads. Memory: one chunk of rows.
void check_rows(const io::ContextSource& source, dist::Range range, int64_t width) {
  if (source.kind == io::ContextSource::kSyntheticUniform) return;  // generated: unit norm by construction
  constexpr int64_t kChunkRows = 8192;
  for (int64_t a = range.begin; a < range.end; a += kChunkRows) {
    (void)io::read_contexts(source, a, std::min(range.end, a + kChunkRows), width);
  }
}

Sources parse_sources(const config::RunConfig& cfg) {
  const auto& idc = cfg.identities;
  Sources s;
  s.strategy = negatives::parse_strategy(cfg.negatives.strategy);
  s.pool_total = idc.count;
  s.pool_is_identity_set = cfg.negatives.pool.empty();
  const std::string base = fs::path(cfg.config_path).parent_path().string();
  s.identities = io::parse_context_source(idc.source, base);
  if (s.identities.kind == io::ContextSource::kSyntheticUniform) s.identities.seed = static_cast<uint64_t>(idc.seed);
  const int64_t rows = io::context_rows(s.identities);
  if (rows >= 0 && idc.offset + idc.count > rows) {
    throw ConfigError("config: identities.count = " + std::to_string(idc.count) + " with offset " +
                      std::to_string(idc.offset) + " needs " + std::to_string(idc.offset + idc.count) +
                      " rows, but " + idc.source + " has " + std::to_string(rows));
  }
  if (!s.pool_is_identity_set) {
    s.pool = io::parse_context_source(cfg.negatives.pool, base);
    s.pool_total = io::context_rows(s.pool);
    if (s.pool_total < 0) {
      throw ConfigError("config: negatives.pool must be a file (.h5 or .npy), not \"" + cfg.negatives.pool + "\"");
    }
  }
  if (negatives::picks_pool_row(s.strategy) && s.pool_is_identity_set && idc.count < 2) {
    throw ConfigError("config: negatives.strategy = \"" + cfg.negatives.strategy +
                      "\" needs at least 2 identities (identities.count = 1)");
  }
  return s;
}
}  // namespace

Sources validate_sources(const config::RunConfig& cfg, int rank, int world_size) {
  try {
    Sources s = parse_sources(cfg);
    const auto& idc = cfg.identities;
    const dist::Range mine = dist::block_partition(idc.count, rank, world_size);
    check_rows(s.identities, {idc.offset + mine.begin, idc.offset + mine.end}, idc.context_dim);
    if (!s.pool_is_identity_set) {
      check_rows(s.pool, dist::block_partition(s.pool_total, rank, world_size), idc.context_dim);
    }
    return s;
  } catch (const IoError& e) {
    // A missing or unreadable file named by the configuration is a configuration error (exit code 2),
    throw ConfigError(std::string("config: ") + e.what());
  } catch (const InputError& e) {
    // and so is a bad identity or pool file (wrong dtype or width, NaN/Inf or zero rows, truncated data).
    throw ConfigError(std::string("config: ") + e.what());
  }
}

RankNegatives select_negatives(const dist::Comm& comm, const config::RunConfig& cfg, const Sources& sources,
                               dist::Range my_ids, torch::Device device) {
  const auto& idc = cfg.identities;
  RankNegatives r;
  r.my_ids = my_ids;
  r.my_pool_span = my_ids;
  dist::agree(comm, "identities", [&] {
    r.my_contexts = io::read_contexts(sources.identities, idc.offset + my_ids.begin, idc.offset + my_ids.end,
                                      idc.context_dim);
    if (!sources.pool_is_identity_set) {
      r.my_pool_span = dist::block_partition(sources.pool_total, comm.rank(), comm.size());
      r.my_pool = io::read_contexts(sources.pool, r.my_pool_span.begin, r.my_pool_span.end, idc.context_dim);
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  const torch::Tensor& pool = sources.pool_is_identity_set ? r.my_contexts : r.my_pool;
  // Collective on every rank; its own agreement also compares the arguments across ranks. NCCL needs one GPU per
  // rank (it refuses two ranks on one device): the ranks agree on the branch, so none waits in the other one.
  const bool gpu_per_rank = device.is_cuda() && dist::nccl_built() &&
                            comm.local_size() <= static_cast<int>(torch::cuda::device_count());
  const bool on_device =
      (sources.strategy == negatives::Strategy::kFar || sources.strategy == negatives::Strategy::kClose) &&
      comm.allreduce(gpu_per_rank ? 1 : 0, dist::ReduceOp::kMin) == 1;
  if (on_device) {
    const dist::NcclComm nccl(comm, device);
    r.selection = dist::select_negatives_on_device(
        comm, nccl,
        dist::SelectionShard{r.my_contexts, my_ids.begin, pool, r.my_pool_span.begin, sources.pool_total,
                             sources.pool_is_identity_set},
        sources.strategy);
  } else {
    r.selection = dist::select_negatives_distributed(comm, r.my_contexts, my_ids.begin, pool, r.my_pool_span.begin,
                                                     sources.pool_total, sources.pool_is_identity_set,
                                                     sources.strategy, static_cast<uint64_t>(cfg.negatives.seed),
                                                     cfg.negatives.block_rows);
  }
  // Every rank needs the negatives of the identities its batches touch: share the small index array.
  r.all_index.assign(static_cast<size_t>(idc.count), 0);
  const int64_t* mine = r.selection.negative_index.data_ptr<int64_t>();
  std::copy(mine, mine + my_ids.size(), r.all_index.begin() + my_ids.begin);
  r.all_index = comm.allreduce(r.all_index, dist::ReduceOp::kSum);
  if (comm.rank() == 0) {
    log::info("negatives: '{}' selected for {} identities in {:.2f} s{}", cfg.negatives.strategy, idc.count,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
              on_device ? " (NCCL all-gather, products on the GPU)" : "");
  }
  return r;
}

TouchedContexts touched_contexts(const dist::Comm& comm, const config::RunConfig& cfg, const Sources& sources,
                                 const RankNegatives& negs, dist::Range touched) {
  const auto& idc = cfg.identities;
  TouchedContexts out;
  torch::Tensor& pos = out.pos;
  torch::Tensor& neg = out.neg;
  dist::agree(comm, "contexts", [&] {
    if (touched.size() > 0) {
      pos = io::read_contexts(sources.identities, idc.offset + touched.begin, idc.offset + touched.end,
                              idc.context_dim);
    }
  });
  if (sources.strategy == negatives::Strategy::kZero) {
    neg = torch::zeros({touched.size(), idc.context_dim}, torch::kFloat32);
  } else if (sources.strategy != negatives::Strategy::kNone) {
    const std::vector<int64_t> wanted(negs.all_index.begin() + touched.begin, negs.all_index.begin() + touched.end);
    neg = dist::gather_pool_rows(comm, torch::tensor(wanted, torch::kInt64),
                                 sources.pool_is_identity_set ? negs.my_contexts : negs.my_pool,
                                 negs.my_pool_span.begin, sources.pool_total);
  }
  return out;
}

}  // namespace adaptdiff::job
