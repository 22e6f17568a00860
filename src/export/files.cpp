#include "export/files.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace adaptdiff::exporter {

namespace fs = std::filesystem;

int pad_width(int64_t count) {
  int width = 1;
  for (int64_t largest = count - 1; largest >= 10; largest /= 10) ++width;
  return width;
}

std::string zero_padded(int64_t value, int width) {
  std::string digits = std::to_string(value);
  if (static_cast<int>(digits.size()) < width) digits.insert(0, static_cast<size_t>(width) - digits.size(), '0');
  return digits;
}

void write_file_atomic(const std::string& path, const void* bytes, size_t size) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw IoError("export: cannot create '" + tmp + "': " + std::strerror(errno));
    out.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(size));
    out.flush();
    if (!out) throw IoError("export: writing '" + tmp + "' failed: " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw IoError("export: renaming '" + tmp + "' to '" + path + "' failed: " + std::strerror(errno));
  }
}

void write_file_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}

std::string read_file(const std::string& path, bool* exists) {
  std::error_code ec;
  const bool present = fs::is_regular_file(path, ec);
  if (exists != nullptr) *exists = present;
  if (!present) return "";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("export: cannot read '" + path + "': " + std::strerror(errno));
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

void ensure_writable_folder(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    throw InputError("export: cannot create the output folder '" + dir + "': " +
                     (ec ? ec.message() : std::string("a file of that name exists")));
  }
  const std::string probe = (fs::path(dir) / (".write_probe." + std::to_string(::getpid()))).string();
  std::FILE* f = std::fopen(probe.c_str(), "wb");
  if (f == nullptr) {
    throw InputError("export: the output folder '" + dir + "' is not writable: " + std::strerror(errno));
  }
  std::fclose(f);
  std::remove(probe.c_str());
}

void check_or_write_manifest(const std::string& dir, const Manifest& manifest) {
  const std::string path = (fs::path(dir) / "export.txt").string();
  std::string text;
  for (const auto& [key, value] : manifest) text += key + "=" + value + "\n";
  bool exists = false;
  const std::string old = read_file(path, &exists);
  if (!exists) {
    write_file_atomic(path, text);
    return;
  }
  Manifest before;
  std::istringstream in(old);
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) before[line.substr(0, eq)] = line.substr(eq + 1);
  }
  std::string diffs;
  for (const auto& [key, value] : manifest) {
    const auto it = before.find(key);
    const std::string was = it == before.end() ? "(absent)" : it->second;
    if (was != value) diffs += "\n  " + key + ": '" + was + "' there, '" + value + "' now";
  }
  if (!diffs.empty()) {
    throw InputError("export: '" + dir + "' holds an export with other settings or of another file:" + diffs +
                     "\n---> HINT: choose another --out folder, or remove this one to start over");
  }
}

}  // namespace adaptdiff::exporter
