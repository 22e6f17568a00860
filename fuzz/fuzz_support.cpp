#include "fuzz_support.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace adaptdiff::fuzz {
namespace {

struct TempFolder {
  TempFolder() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/adaptdiff_fuzz_XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("adaptdiff fuzz: mkdtemp");
      std::abort();
    }
    path = tmpl;
  }
  ~TempFolder() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string path;
};

}  // namespace

std::string temp_path(const std::string& name) {
  static const TempFolder folder;
  return folder.path + "/" + name;
}

void write_file(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) {
    std::fprintf(stderr, "adaptdiff fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
}

}  // namespace adaptdiff::fuzz
