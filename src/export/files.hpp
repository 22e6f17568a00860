#pragma once
// File helpers of the exporter: names that sort as numbers, complete-or-absent writes (temp name, then
// rename), and the export manifest that keeps a rerun from mixing settings. No MPI.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace adaptdiff::exporter {

/// Digits needed to write every value of 0..count-1 (at least 1): pad_width(10) = 1, pad_width(11) = 2.
int pad_width(int64_t count);

/// `value` (>= 0) in decimal, left-padded with zeros to `width`: zero_padded(7, 3) = "007". With one width
/// for a whole set, string order equals numeric order (trainers and evaluators sort folder names as strings).
std::string zero_padded(int64_t value, int width);

/// Writes `bytes` to `path` complete or not at all: to "<path>.tmp" in the same folder, then renamed over
/// `path` (a kill leaves at most a stale .tmp, never a truncated final file). Throws IoError naming the path.
void write_file_atomic(const std::string& path, const void* bytes, size_t size);
void write_file_atomic(const std::string& path, const std::string& text);

/// The whole file `path`; "" with exists = false when it is missing. Throws IoError when it cannot be read.
std::string read_file(const std::string& path, bool* exists = nullptr);

/// Creates folder `dir` (and parents) and checks that a file can be created in it. Throws InputError naming
/// the folder and the system error when not.
void ensure_writable_folder(const std::string& dir);

/// The export settings recorded in DIR/export.txt ("key=value" lines).
using Manifest = std::map<std::string, std::string>;

/// Writes `manifest` to `dir`/export.txt if that file is missing; if it exists it must hold the same values,
/// else InputError listing each difference (another export of other settings or another source is there:
/// choose another --out or remove it).
void check_or_write_manifest(const std::string& dir, const Manifest& manifest);

}  // namespace adaptdiff::exporter
