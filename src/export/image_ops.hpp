#pragma once
// Image operations of the exporter on 8-bit RGB images: anti-aliased resizing, PNG/JPEG encoding (stb, see
// stb_impl.cpp), contact sheets (grids) and a tiny bitmap font for row labels. No I/O, no MPI.
#include <cstdint>
#include <string>
#include <vector>

namespace adaptdiff::exporter {

/// An 8-bit RGB image, row-major, pixel (x, y) channel c at rgb[(y * width + x) * 3 + c].
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;

  Image() = default;
  /// A width x height image filled with `value` in every channel.
  Image(int w, int h, uint8_t value = 0);
  uint8_t* pixel(int x, int y) { return rgb.data() + (static_cast<size_t>(y) * width + x) * 3; }
  const uint8_t* pixel(int x, int y) const { return rgb.data() + (static_cast<size_t>(y) * width + x) * 3; }
};

/// Encoded image file format.
enum class ImageFormat { kPng, kJpeg };

/// "png" | "jpg"; the file name extension of `format`.
const char* extension(ImageFormat format);

/// `src` resized to width x height with stb_image_resize's anti-aliased filters in linear colour space
/// (Mitchell-Netravali B=C=1/3 when shrinking, Catmull-Rom when enlarging; the filter support is widened by
/// the scale factor when shrinking, so every source pixel contributes), edges clamped. Equal sizes return a
/// copy. Throws InputError for sizes < 1 and Error if stb fails.
Image resize(const Image& src, int width, int height);

/// `image` encoded as PNG (lossless, zlib level 8) or JPEG (baseline, `quality` 1..100; stb subsamples
/// chroma 2x2 for quality <= 90). Throws InputError for a quality outside 1..100 and Error if stb fails.
std::vector<uint8_t> encode(const Image& image, ImageFormat format, int quality = 95);

/// A contact sheet: `cells` placed row-major in `columns` columns, each cell `padding` pixels from its
/// neighbours and from the border (torchvision's make_grid layout, as upstream writes its 4-wide grids).
/// Every cell must have the size of the first; an empty cell (width 0) stays background. Size:
/// (columns * (w + padding) + padding) x (rows * (h + padding) + padding), rows = ceil(n / columns).
/// Throws InputError when cells is empty, columns < 1 or the sizes differ.
Image compose_grid(const std::vector<Image>& cells, int columns, int padding, uint8_t background);

/// Draws the decimal digits of `value` (>= 0) at (x, y) in a 3x5 pixel font scaled by `scale`, one blank
/// column between digits, clipped to the image. Returns the drawn width in pixels (4 * scale per digit minus
/// one gap).
int draw_number(Image& image, int64_t value, int x, int y, int scale, const uint8_t rgb[3]);

/// Width in pixels that draw_number() uses for `value` at `scale`.
int number_width(int64_t value, int scale);

}  // namespace adaptdiff::exporter
