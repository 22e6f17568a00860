#pragma once
// Shared by the fuzz targets: the readers under test take file paths, so each input is written to a file in a
// private temporary folder (under $TMPDIR, default /tmp; removed when the process exits). Nothing else on the
// file system is read or written by the targets.
#include <cstddef>
#include <cstdint>
#include <string>

namespace adaptdiff::fuzz {

/// Path of `name` inside this process's temporary folder (created on first use).
std::string temp_path(const std::string& name);

/// Writes `size` bytes at `data` to `path` (replacing it); aborts when that fails (a broken harness, not a finding).
void write_file(const std::string& path, const uint8_t* data, size_t size);

}  // namespace adaptdiff::fuzz
