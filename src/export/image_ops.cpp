#include "export/image_ops.hpp"

#include <stb/stb_image_resize.h>
#include <stb/stb_image_write.h>

#include <algorithm>
#include <array>

#include "core/error.hpp"

namespace adaptdiff::exporter {

Image::Image(int w, int h, uint8_t value)
    : width(w), height(h), rgb(static_cast<size_t>(std::max(w, 0)) * static_cast<size_t>(std::max(h, 0)) * 3, value) {}

const char* extension(ImageFormat format) { return format == ImageFormat::kPng ? "png" : "jpg"; }

Image resize(const Image& src, int width, int height) {
  if (width < 1 || height < 1 || src.width < 1 || src.height < 1) {
    throw InputError("export::resize: sizes must be >= 1, got " + std::to_string(src.width) + "x" +
                     std::to_string(src.height) + " -> " + std::to_string(width) + "x" + std::to_string(height));
  }
  if (width == src.width && height == src.height) return src;
  Image out(width, height);
  const int ok = stbir_resize_uint8_generic(src.rgb.data(), src.width, src.height, src.width * 3, out.rgb.data(),
                                            width, height, width * 3, 3, STBIR_ALPHA_CHANNEL_NONE, 0,
                                            STBIR_EDGE_CLAMP, STBIR_FILTER_DEFAULT, STBIR_COLORSPACE_LINEAR, nullptr);
  if (ok == 0) throw Error("export::resize: stb_image_resize failed (out of memory?)");
  return out;
}

namespace {
void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  const auto* bytes = static_cast<const uint8_t*>(data);
  out->insert(out->end(), bytes, bytes + size);
}
}  // namespace

std::vector<uint8_t> encode(const Image& image, ImageFormat format, int quality) {
  if (quality < 1 || quality > 100) {
    throw InputError("export::encode: JPEG quality must be in 1..100, got " + std::to_string(quality));
  }
  std::vector<uint8_t> out;
  const int ok = format == ImageFormat::kPng
                     ? stbi_write_png_to_func(append_bytes, &out, image.width, image.height, 3, image.rgb.data(),
                                              image.width * 3)
                     : stbi_write_jpg_to_func(append_bytes, &out, image.width, image.height, 3, image.rgb.data(),
                                              quality);
  if (ok == 0 || out.empty()) {
    throw Error(std::string("export::encode: stb_image_write failed to encode a ") + std::to_string(image.width) +
                "x" + std::to_string(image.height) + " " + extension(format));
  }
  return out;
}

Image compose_grid(const std::vector<Image>& cells, int columns, int padding, uint8_t background) {
  const std::string op = "export::compose_grid";
  if (cells.empty() || columns < 1 || padding < 0) {
    throw InputError(op + ": needs at least one cell, columns >= 1 and padding >= 0");
  }
  int w = 0, h = 0;
  for (const auto& c : cells) {
    if (c.width == 0) continue;
    if (w == 0) {
      w = c.width;
      h = c.height;
    } else if (c.width != w || c.height != h) {
      throw InputError(op + ": cell of " + std::to_string(c.width) + "x" + std::to_string(c.height) +
                       " among cells of " + std::to_string(w) + "x" + std::to_string(h));
    }
  }
  if (w == 0) throw InputError(op + ": every cell is empty");
  const int n = static_cast<int>(cells.size());
  const int cols = std::min(columns, n);
  const int rows = (n + cols - 1) / cols;
  Image out(cols * (w + padding) + padding, rows * (h + padding) + padding, background);
  for (int i = 0; i < n; ++i) {
    if (cells[static_cast<size_t>(i)].width == 0) continue;
    const int x0 = padding + (i % cols) * (w + padding), y0 = padding + (i / cols) * (h + padding);
    for (int y = 0; y < h; ++y) {
      std::copy_n(cells[static_cast<size_t>(i)].pixel(0, y), static_cast<size_t>(w) * 3, out.pixel(x0, y0 + y));
    }
  }
  return out;
}

namespace {
// 3x5 digit glyphs, one row per entry, bit 2 = left column.
constexpr std::array<std::array<uint8_t, 5>, 10> kDigits{{
    {7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1},
    {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7},
}};

std::string digits_of(int64_t value) { return std::to_string(std::max<int64_t>(value, 0)); }
}  // namespace

int number_width(int64_t value, int scale) { return static_cast<int>(digits_of(value).size()) * 4 * scale - scale; }

int draw_number(Image& image, int64_t value, int x, int y, int scale, const uint8_t rgb[3]) {
  const std::string text = digits_of(value);
  for (size_t d = 0; d < text.size(); ++d) {
    const auto& glyph = kDigits[static_cast<size_t>(text[d] - '0')];
    const int gx = x + static_cast<int>(d) * 4 * scale;
    for (int row = 0; row < 5; ++row) {
      for (int col = 0; col < 3; ++col) {
        if (((glyph[static_cast<size_t>(row)] >> (2 - col)) & 1) == 0) continue;
        for (int dy = 0; dy < scale; ++dy) {
          for (int dx = 0; dx < scale; ++dx) {
            const int px = gx + col * scale + dx, py = y + row * scale + dy;
            if (px < 0 || py < 0 || px >= image.width || py >= image.height) continue;
            std::copy_n(rgb, 3, image.pixel(px, py));
          }
        }
      }
    }
  }
  return number_width(value, scale);
}

}  // namespace adaptdiff::exporter
