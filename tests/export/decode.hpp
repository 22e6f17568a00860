#pragma once
// Test helper: decode a PNG/JPEG file or buffer with stb_image into 8-bit RGB.
#include <stb/stb_image.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace oracle {

struct Decoded {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
};

inline Decoded decode(const std::string& bytes) {
  Decoded d;
  int channels = 0;
  unsigned char* p = stbi_load_from_memory(reinterpret_cast<const unsigned char*>(bytes.data()),
                                           static_cast<int>(bytes.size()), &d.width, &d.height, &channels, 3);
  if (p == nullptr) throw std::runtime_error(std::string("oracle: decode failed: ") + stbi_failure_reason());
  d.rgb.assign(p, p + static_cast<size_t>(d.width) * d.height * 3);
  stbi_image_free(p);
  return d;
}

}  // namespace oracle
