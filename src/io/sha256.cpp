#include "io/sha256.hpp"

#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "core/error.hpp"

namespace adaptdiff::io {
namespace {

constexpr size_t kChunkBytes = size_t{256} << 10;

struct EvpCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};
struct FileCloser {
  void operator()(std::FILE* f) const noexcept { std::fclose(f); }  // read-only: nothing to lose
};

// Incremental SHA-256; every OpenSSL return code is checked once here.
class Sha256 {
 public:
  explicit Sha256(std::string what) : what_(std::move(what)), ctx_(EVP_MD_CTX_new()) {
    if (!ctx_) fail("EVP_MD_CTX_new");
    if (EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) fail("EVP_DigestInit_ex");
  }
  void update(const void* data, size_t n) {
    if (n > 0 && EVP_DigestUpdate(ctx_.get(), data, n) != 1) fail("EVP_DigestUpdate");
  }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_.get(), md, &len) != 1) fail("EVP_DigestFinal_ex");
    static const char* digits = "0123456789abcdef";
    std::string out;
    out.reserve(2 * len);
    for (unsigned int i = 0; i < len; ++i) {
      out.push_back(digits[md[i] >> 4]);
      out.push_back(digits[md[i] & 0xF]);
    }
    return out;
  }

 private:
  [[noreturn]] void fail(const char* call) const {
    throw IoError(what_ + ": OpenSSL " + call + " failed");
  }
  std::string what_;
  std::unique_ptr<EVP_MD_CTX, EvpCtxDeleter> ctx_;
};

}  // namespace

std::string sha256_file(const std::string& path) {
  const std::string op = "sha256_file('" + path + "')";
  errno = 0;
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) {
    throw IoError(op + ": cannot open for reading: " + std::strerror(errno));
  }
  Sha256 sha(op);
  std::vector<unsigned char> buf(kChunkBytes);
  for (;;) {
    errno = 0;
    const size_t n = std::fread(buf.data(), 1, buf.size(), file.get());
    sha.update(buf.data(), n);
    if (n < buf.size()) {
      if (std::ferror(file.get())) {
        throw IoError(op + ": read error: " + std::strerror(errno != 0 ? errno : EIO));
      }
      break;  // end of file
    }
  }
  return sha.hex();
}

std::string sha256_bytes(std::string_view data) {
  Sha256 sha("sha256_bytes");
  sha.update(data.data(), data.size());
  return sha.hex();
}

}  // namespace adaptdiff::io
