#include "model/zip_check.hpp"

#include <algorithm>
#include <fstream>
#include <vector>

#include "core/error.hpp"

namespace adaptdiff::model {
namespace {

constexpr uint32_t kEocdSignature = 0x06054b50, kEocd64Signature = 0x06064b50, kLocator64Signature = 0x07064b50;
constexpr uint32_t kCentralSignature = 0x02014b50, kLocalSignature = 0x04034b50;
constexpr uint64_t kMaxDeflateRatio = 1032;

uint64_t le(const unsigned char* p, int n) {
  uint64_t v = 0;
  for (int k = n - 1; k >= 0; --k) v = (v << 8) | p[k];
  return v;
}

class ZipFile {
 public:
  ZipFile(const std::string& path, uint64_t size) : path_(path), size_(size), in_(path, std::ios::binary) {
    if (!in_) fail("cannot open");
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw ModelError("read_state_dict: '" + path_ + "': not a readable PyTorch zip checkpoint (zip central directory: " +
                     what + ")");
  }
  std::vector<unsigned char> read(uint64_t offset, uint64_t n) {
    if (offset > size_ || n > size_ - offset) fail("record at byte " + std::to_string(offset) + " runs past the end");
    std::vector<unsigned char> out(static_cast<size_t>(n));
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(n));
    if (!in_) fail("read error at byte " + std::to_string(offset));
    return out;
  }
  uint64_t size() const { return size_; }

 private:
  std::string path_;
  uint64_t size_;
  std::ifstream in_;
};

struct Directory {
  uint64_t entries = 0, offset = 0, size = 0;
};

// The end-of-central-directory record (the last one within the final 64 KiB + 22 bytes), zip64 when it says so.
Directory find_directory(ZipFile& z) {
  const uint64_t tail_len = std::min<uint64_t>(z.size(), 65535 + 22);
  const uint64_t tail_at = z.size() - tail_len;
  const std::vector<unsigned char> tail = z.read(tail_at, tail_len);
  for (uint64_t i = tail_len < 22 ? 0 : tail_len - 22 + 1; i-- > 0;) {
    if (le(&tail[i], 4) != kEocdSignature) continue;
    Directory d{le(&tail[i + 10], 2), le(&tail[i + 16], 4), le(&tail[i + 12], 4)};
    const uint64_t eocd_at = tail_at + i;
    if (d.entries == 0xffff || d.offset == 0xffffffff || d.size == 0xffffffff) {
      if (eocd_at < 20) z.fail("zip64 locator missing");
      const std::vector<unsigned char> loc = z.read(eocd_at - 20, 20);
      if (le(loc.data(), 4) != kLocator64Signature) z.fail("zip64 locator missing");
      const std::vector<unsigned char> e64 = z.read(le(&loc[8], 8), 56);
      if (le(e64.data(), 4) != kEocd64Signature) z.fail("zip64 end of central directory missing");
      d = Directory{le(&e64[32], 8), le(&e64[48], 8), le(&e64[40], 8)};
    }
    return d;
  }
  z.fail("no end of central directory record: not a zip archive");
}

}  // namespace

uint64_t check_zip_sizes(const std::string& path, uint64_t file_size) {
  ZipFile z(path, file_size);
  const Directory d = find_directory(z);
  if (d.entries > d.size / 46) z.fail(std::to_string(d.entries) + " entries cannot fit its " + std::to_string(d.size) + " bytes");
  // LibTorch's reader leaks its zip state when its constructor throws after opening the archive (no records,
  // first record outside a folder, no version record): refuse those first, with a message of our own.
  if (d.entries == 0) z.fail("the archive holds no records (a torch.save file holds data.pkl and version)");
  const std::vector<unsigned char> cd = z.read(d.offset, d.size);
  std::string folder;       // "<archive>/": the folder of the first record, where LibTorch looks for the rest
  bool has_version = false;
  uint64_t total = 0;
  size_t p = 0;
  for (uint64_t e = 0; e < d.entries; ++e) {
    if (cd.size() - p < 46 || le(&cd[p], 4) != kCentralSignature) z.fail("entry " + std::to_string(e) + " is malformed");
    const uint64_t method = le(&cd[p + 10], 2);
    uint64_t comp = le(&cd[p + 20], 4), uncomp = le(&cd[p + 24], 4), local = le(&cd[p + 42], 4);
    const uint64_t name_len = le(&cd[p + 28], 2), extra_len = le(&cd[p + 30], 2), comment_len = le(&cd[p + 32], 2);
    if (cd.size() - p - 46 < name_len + extra_len + comment_len) z.fail("entry " + std::to_string(e) + " is cut short");
    const std::string name(reinterpret_cast<const char*>(&cd[p + 46]), name_len);
    if (e == 0) {
      if (name.find('/') == std::string::npos) z.fail("its first record '" + name + "' is not in a folder");
      folder = name.substr(0, name.find('/') + 1);
    }
    has_version = has_version || name == folder + "version" || name == folder + ".data/version";
    // Zip64 extended information: 8-byte values for exactly those fields that hold 0xffffffff, in this order.
    for (size_t x = p + 46 + name_len, x_end = x + extra_len; x + 4 <= x_end;) {
      const uint64_t id = le(&cd[x], 2), len = le(&cd[x + 2], 2);
      if (x_end - x - 4 < len) break;
      if (id == 0x0001) {
        size_t v = x + 4;
        for (uint64_t* field : {&uncomp, &comp, &local}) {
          if (*field != 0xffffffff) continue;
          if (v + 8 > x + 4 + len) z.fail("entry " + std::to_string(e) + " has a short zip64 field");
          *field = le(&cd[v], 8);
          v += 8;
        }
      }
      x += 4 + len;
    }
    const bool ok = method == 0 ? uncomp == comp : uncomp <= kMaxDeflateRatio * std::min(comp, file_size) + 1024;
    if (!ok || comp > file_size || local > file_size - comp) {
      z.fail("entry " + std::to_string(e) + " claims " + std::to_string(uncomp) + " bytes (" + std::to_string(comp) +
             " stored at byte " + std::to_string(local) + ") in a file of " + std::to_string(file_size) + " bytes");
    }
    // The local header the entry points at must be one, with the same name (LibTorch's reader would throw from
    // its constructor on the first read, and leak).
    const std::vector<unsigned char> local_header = z.read(local, 30);
    if (le(local_header.data(), 4) != kLocalSignature || le(&local_header[26], 2) != name_len ||
        z.read(local + 30, name_len) != std::vector<unsigned char>(name.begin(), name.end()))
      z.fail("entry " + std::to_string(e) + " ('" + name + "') points at byte " + std::to_string(local) +
             ", which is not its local header");
    total += uncomp;
    p += 46 + name_len + extra_len + comment_len;
  }
  if (!has_version) z.fail("it has no record '" + folder + "version' (not a torch.save file?)");
  return total;
}

}  // namespace adaptdiff::model
