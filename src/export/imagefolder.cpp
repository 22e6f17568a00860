// imagefolder: DIR/<identity>/<k>.<ext> (names zero-padded to one width per level, so string order is numeric
// order) and DIR/list.txt ("relative/path label" per exported sample, label = identity index). Each rank
// writes its identity range; a file that exists is complete (written under a temporary name, then renamed)
// and is kept.
#include <filesystem>

#include "core/error.hpp"
#include "dist/agree.hpp"
#include "export/files.hpp"
#include "export/formats.hpp"

namespace adaptdiff::exporter {

namespace fs = std::filesystem;

std::string imagefolder_path(const Source& source, int64_t identity, int64_t k, ImageFormat format) {
  return zero_padded(identity, pad_width(source.identities())) + "/" +
         zero_padded(k, pad_width(source.per_identity())) + "." + extension(format);
}

namespace {
void write_identity(const Context& ctx, int64_t i) {
  const Source& s = ctx.source;
  const int64_t per = s.per_identity();
  const fs::path dir(ctx.options.out);
  std::vector<int64_t> missing;
  for (int64_t k = 0; k < per; ++k) {
    if (s.done[static_cast<size_t>(i * per + k)] == 0) continue;
    if (fs::exists(dir / imagefolder_path(s, i, k, ctx.options.image_format))) {
      ++ctx.counters.skipped;
    } else {
      missing.push_back(k);
    }
  }
  if (missing.empty()) return;
  fs::create_directories(dir / zero_padded(i, pad_width(s.identities())));
  const std::vector<Image> images = read_rows(ctx.reader, i * per, (i + 1) * per);
  for (int64_t k : missing) {
    const Image img = ctx.prepare(images[static_cast<size_t>(k)]);
    ctx.write((dir / imagefolder_path(s, i, k, ctx.options.image_format)).string(),
              encode(img, ctx.options.image_format, ctx.options.quality));
  }
}

std::string list_text(const Source& s, ImageFormat format) {
  std::string text;
  for (int64_t i = 0; i < s.identities(); ++i) {
    for (int64_t k = 0; k < s.per_identity(); ++k) {
      if (s.done[static_cast<size_t>(i * s.per_identity() + k)] == 0) continue;
      text += imagefolder_path(s, i, k, format) + " " + std::to_string(i) + "\n";
    }
  }
  return text;
}
}  // namespace

void export_imagefolder(const dist::Comm& comm, Context& ctx) {
  dist::agree(comm, "export imagefolder", [&] {
    int64_t done_mine = 0;
    for (int64_t i = ctx.ids.begin; i < ctx.ids.end; ++i) {
      if (ctx.source.done_of(i) == 0) continue;
      write_identity(ctx, i);
      done_mine += ctx.source.done_of(i);
      ctx.progress.update(done_mine);
    }
  });
  dist::agree(comm, "export imagefolder list.txt", [&] {
    if (comm.rank() != 0) return;
    const std::string path = (fs::path(ctx.options.out) / "list.txt").string();
    const std::string text = list_text(ctx.source, ctx.options.image_format);
    bool exists = false;
    if (read_file(path, &exists) == text && exists) {
      ++ctx.counters.skipped;
      return;
    }
    ctx.write(path, std::vector<uint8_t>(text.begin(), text.end()));
  });
}

}  // namespace adaptdiff::exporter
