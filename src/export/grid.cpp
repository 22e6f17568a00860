// grid: DIR/grids/<identity>.png, one contact sheet per identity with its K images in rows of 4 (2-pixel black
// gaps, torchvision make_grid's layout as upstream writes its grids; a sample not done yet stays black), and
// on rank 0 DIR/overview.png: the first done image of each of the first kOverviewIdentities identities, 16 per
// row, each row labelled on the left with the index of its first identity (3x5 digit font at scale 2);
// DIR/overview.txt lists the identities of each row. A sheet is kept on a rerun when it exists and every
// sample it shows was done already (its identities are complete); otherwise it is drawn again.
#include <algorithm>
#include <filesystem>

#include "dist/agree.hpp"
#include "export/files.hpp"
#include "export/formats.hpp"

namespace adaptdiff::exporter {

namespace fs = std::filesystem;

namespace {
constexpr int kGridColumns = 4, kPadding = 2, kOverviewColumns = 16;
constexpr int64_t kOverviewIdentities = 256;
constexpr uint8_t kWhite[3] = {255, 255, 255};

bool identity_complete(const Source& s, int64_t i) { return s.done_of(i) == s.per_identity(); }

void write_sheet(const Context& ctx, int64_t i) {
  const Source& s = ctx.source;
  const std::string path =
      (fs::path(ctx.options.out) / "grids" / (zero_padded(i, pad_width(s.identities())) + ".png")).string();
  if (identity_complete(s, i) && fs::exists(path)) {
    ++ctx.counters.skipped;
    return;
  }
  const int64_t per = s.per_identity();
  const std::vector<Image> images = read_rows(ctx.reader, i * per, (i + 1) * per);
  std::vector<Image> cells(static_cast<size_t>(per));
  for (int64_t k = 0; k < per; ++k) {
    if (s.done[static_cast<size_t>(i * per + k)] != 0) cells[static_cast<size_t>(k)] = ctx.prepare(images[static_cast<size_t>(k)]);
  }
  ctx.write(path, encode(compose_grid(cells, kGridColumns, kPadding, 0), ImageFormat::kPng));
}

void write_overview(const Context& ctx) {
  const Source& s = ctx.source;
  const fs::path dir(ctx.options.out);
  const int64_t shown = std::min(s.identities(), kOverviewIdentities);
  bool all_complete = true;
  for (int64_t i = 0; i < shown; ++i) all_complete = all_complete && identity_complete(s, i);
  if (all_complete && fs::exists(dir / "overview.png") && fs::exists(dir / "overview.txt")) {
    ctx.counters.skipped += 2;
    return;
  }
  std::vector<Image> cells(static_cast<size_t>(shown));
  std::string legend = "# overview.png: row, first and last identity shown (first done image of each, left to right)\n";
  for (int64_t i = 0; i < shown; ++i) {
    const int64_t per = s.per_identity();
    for (int64_t k = 0; k < per; ++k) {
      if (s.done[static_cast<size_t>(i * per + k)] == 0) continue;
      cells[static_cast<size_t>(i)] = ctx.prepare(read_rows(ctx.reader, i * per + k, i * per + k + 1)[0]);
      break;
    }
    if (i % kOverviewColumns == 0) {
      legend += "row " + std::to_string(i / kOverviewColumns) + ": identities " + std::to_string(i) + ".." +
                std::to_string(std::min(shown, i + kOverviewColumns) - 1) + "\n";
    }
  }
  if (cells.empty() || std::all_of(cells.begin(), cells.end(), [](const Image& c) { return c.width == 0; })) {
    cells.assign(1, Image(ctx.out_width(), ctx.out_height()));  // nothing done among them: one black cell
  }
  const Image grid = compose_grid(cells, kOverviewColumns, kPadding, 0);
  // Left margin for the row labels: 4 pixels, the digits (8 pixels each at scale 2, minus the last gap), 4 pixels.
  const int64_t last_label = ((shown - 1) / kOverviewColumns) * kOverviewColumns;
  const int margin = 8 * static_cast<int>(std::to_string(last_label).size()) + 6;
  Image sheet(margin + grid.width, grid.height, 0);
  for (int y = 0; y < grid.height; ++y) std::copy_n(grid.pixel(0, y), static_cast<size_t>(grid.width) * 3, sheet.pixel(margin, y));
  const int cell_h = ctx.out_height();
  for (int64_t row = 0; row * kOverviewColumns < shown; ++row) {
    const int y = kPadding + static_cast<int>(row) * (cell_h + kPadding) + std::max(0, (cell_h - 10) / 2);
    draw_number(sheet, row * kOverviewColumns, 4, y, 2, kWhite);
  }
  ctx.write((dir / "overview.png").string(), encode(sheet, ImageFormat::kPng));
  ctx.write((dir / "overview.txt").string(), std::vector<uint8_t>(legend.begin(), legend.end()));
}
}  // namespace

void export_grid(const dist::Comm& comm, Context& ctx) {
  dist::agree(comm, "export grid", [&] {
    fs::create_directories(fs::path(ctx.options.out) / "grids");
    int64_t done_mine = 0;
    for (int64_t i = ctx.ids.begin; i < ctx.ids.end; ++i) {
      if (ctx.source.done_of(i) == 0) continue;
      write_sheet(ctx, i);
      done_mine += ctx.source.done_of(i);
      ctx.progress.update(done_mine);
    }
  });
  dist::agree(comm, "export overview", [&] {
    if (comm.rank() == 0) write_overview(ctx);
  });
}

}  // namespace adaptdiff::exporter
