// insightface: DIR/train.rec + DIR/train.idx (MXNet indexed RecordIO, recordio.hpp) + DIR/property, laid out
// as insightface's im2rec writes training sets and arcface_torch's MXFaceDataset reads them:
//   key 0            header record: flag 2, labels (M+1, M+1+N): images are keys 1..M, identities M+1..M+N
//   keys 1..M        one per done sample in row order: flag 0, label = identity index (float32), id = key
//   keys M+1+i       identity i: flag 2, labels (first, last+1) of its image keys (empty range if none done)
//   property         "N,H,W" (classes, image height and width as written)
// Ref: insightface recognition/arcface_torch/dataset.py (MXFaceDataset: record 0 with flag > 0 gives the image
// keys range(1, label[0])); mxnet python/mxnet/recordio.py (pack, IRHeader).
//
// Distribution: rank r encodes its identity range into DIR/.parts/part-<first>-<end>-<key>-<count>.rec/.idx
// (key and count of its first image key and its images; the .rec is renamed into place last, so an existing
// part is complete and a rerun keeps it). Rank 0 then concatenates the header record, the parts in rank order
// (their local offsets shifted by where each part lands) and the identity records into train.rec, writes
// train.idx, then property (last: the marker of a complete export), and removes the parts.
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/error.hpp"
#include "dist/agree.hpp"
#include "export/files.hpp"
#include "export/formats.hpp"
#include "export/recordio.hpp"

namespace adaptdiff::exporter {

namespace fs = std::filesystem;

namespace {
/// Float32 holds every integer up to 2^24 exactly: keys and labels must stay below.
constexpr int64_t kMaxExactFloat = int64_t{1} << 24;

struct Part {
  dist::Range ids;
  int64_t first_key = 0, count = 0;
  std::string rec, idx;
};

Part part_of(const Context& ctx, const dist::Range& ids) {
  const Source& s = ctx.source;
  Part p;
  p.ids = ids;
  p.first_key = 1 + s.done_before[static_cast<size_t>(ids.begin)];
  p.count = s.done_before[static_cast<size_t>(ids.end)] - s.done_before[static_cast<size_t>(ids.begin)];
  const std::string stem = (fs::path(ctx.options.out) / ".parts" /
                            ("part-" + std::to_string(ids.begin) + "-" + std::to_string(ids.end) + "-" +
                             std::to_string(p.first_key) + "-" + std::to_string(p.count)))
                               .string();
  p.rec = stem + ".rec";
  p.idx = stem + ".idx";
  return p;
}

std::string property_text(const Context& ctx) {
  return std::to_string(ctx.source.identities()) + "," + std::to_string(ctx.out_height()) + "," +
         std::to_string(ctx.out_width()) + "\n";
}

/// True when train.rec, train.idx (with every key) and property (matching) are there.
bool complete(const Context& ctx) {
  const fs::path dir(ctx.options.out);
  bool has_property = false, has_idx = false;
  const std::string property = read_file((dir / "property").string(), &has_property);
  if (!has_property || property != property_text(ctx) || !fs::exists(dir / "train.rec")) return false;
  const std::string idx = read_file((dir / "train.idx").string(), &has_idx);
  const auto lines = static_cast<int64_t>(std::count(idx.begin(), idx.end(), '\n'));
  return has_idx && lines == 1 + ctx.source.done_total() + ctx.source.identities();
}

void write_part(const Context& ctx, const Part& p) {
  if (p.count == 0) return;
  if (fs::exists(p.rec) && fs::exists(p.idx)) {
    ctx.counters.skipped += p.count;
    return;
  }
  fs::create_directories(fs::path(p.rec).parent_path());
  const Source& s = ctx.source;
  const int64_t per = s.per_identity();
  RecordIOWriter rec(p.rec + ".tmp");
  int64_t key = p.first_key, done_mine = 0;
  for (int64_t i = p.ids.begin; i < p.ids.end; ++i) {
    if (s.done_of(i) == 0) continue;
    const std::vector<Image> images = read_rows(ctx.reader, i * per, (i + 1) * per);
    for (int64_t k = 0; k < per; ++k) {
      if (s.done[static_cast<size_t>(i * per + k)] == 0) continue;
      const auto image = encode(ctx.prepare(images[static_cast<size_t>(k)]), ctx.options.image_format,
                                ctx.options.quality);
      rec.write(static_cast<uint64_t>(key), pack_image_record(static_cast<float>(i), static_cast<uint64_t>(key), image));
      ++key;
    }
    done_mine += s.done_of(i);
    ctx.progress.update(done_mine);
  }
  rec.close();
  write_file_atomic(p.idx, index_text(rec.index()));
  if (std::rename((p.rec + ".tmp").c_str(), p.rec.c_str()) != 0) {
    throw IoError("export: renaming '" + p.rec + ".tmp' failed");
  }
  ctx.counters.written += p.count;
  ctx.counters.bytes += static_cast<int64_t>(rec.bytes());
}

/// Rank 0: train.rec/train.idx/property from the parts of every rank.
void assemble(const Context& ctx, int world_size) {
  const Source& s = ctx.source;
  const fs::path dir(ctx.options.out);
  const int64_t images = s.done_total(), n = s.identities();
  std::remove((dir / "property").c_str());  // not complete until it is written again
  const std::string rec_path = (dir / "train.rec").string();
  RecordIOWriter rec(rec_path + ".tmp");
  rec.write(0, pack_label_array_record({static_cast<float>(images + 1), static_cast<float>(images + 1 + n)}, 0));
  std::vector<std::pair<uint64_t, uint64_t>> index = rec.index();
  for (int r = 0; r < world_size; ++r) {
    const Part p = part_of(ctx, dist::block_partition(n, r, world_size));
    if (p.count == 0) continue;
    const auto entries = parse_index(read_file(p.idx), p.idx);
    if (static_cast<int64_t>(entries.size()) != p.count || entries.front().first != static_cast<uint64_t>(p.first_key)) {
      throw IoError("export: part index '" + p.idx + "' has " + std::to_string(entries.size()) +
                    " entries, expected " + std::to_string(p.count) + " from key " + std::to_string(p.first_key) +
                    "\n---> HINT: remove the folder " + (dir / ".parts").string() + " and run again");
    }
    const uint64_t base = rec.append_file(p.rec);
    for (const auto& [key, offset] : entries) index.emplace_back(key, offset + base);
  }
  for (int64_t i = 0; i < n; ++i) {
    const auto key = static_cast<uint64_t>(images + 1 + i);
    const std::vector<float> range{static_cast<float>(1 + s.done_before[static_cast<size_t>(i)]),
                                   static_cast<float>(1 + s.done_before[static_cast<size_t>(i) + 1])};
    index.emplace_back(key, rec.write(key, pack_label_array_record(range, key)));
  }
  rec.close();
  const std::string idx = index_text(index);
  write_file_atomic((dir / "train.idx").string(), idx);
  if (std::rename((rec_path + ".tmp").c_str(), rec_path.c_str()) != 0) {
    throw IoError("export: renaming '" + rec_path + ".tmp' failed");
  }
  write_file_atomic((dir / "property").string(), property_text(ctx));
  fs::remove_all(dir / ".parts");
  ctx.counters.written += 1 + n;  // header and identity records
  ctx.counters.bytes += static_cast<int64_t>(rec.bytes() + idx.size());
}
}  // namespace

void export_insightface(const dist::Comm& comm, Context& ctx) {
  const Source& s = ctx.source;
  std::vector<int64_t> flags{0};
  const auto agreed = dist::agree(
      comm, "export insightface check",
      [&] {
        if (1 + s.done_total() + s.identities() > kMaxExactFloat) {
          throw InputError("export: insightface keys and labels are float32 in the record headers; " +
                           std::to_string(s.done_total()) + " images and " + std::to_string(s.identities()) +
                           " identities exceed 2^24, which float32 cannot count exactly");
        }
        flags[0] = comm.rank() == 0 && complete(ctx) ? 1 : 0;
      },
      flags);
  if (agreed[0] != 0) {
    if (comm.rank() == 0) ctx.counters.skipped += 1 + s.done_total() + s.identities();
    return;
  }
  dist::agree(comm, "export insightface part", [&] { write_part(ctx, part_of(ctx, ctx.ids)); });
  dist::agree(comm, "export insightface assemble", [&] {
    if (comm.rank() == 0) assemble(ctx, comm.size());
  });
}

}  // namespace adaptdiff::exporter
