#pragma once
// Size checks on a zip archive's central directory before LibTorch's PyTorchStreamReader (miniz) reads it:
// miniz allocates a record's uncompressed size as the central directory claims it, so a few bytes of header
// could ask for terabytes. Every entry's claim is checked against the bytes the file really holds.
// Ref: PKWARE APPNOTE.TXT 6.3 (sections 4.3.12 central directory header, 4.3.14-4.3.16 zip64 records,
// 4.5.3 zip64 extended information extra field).
#include <cstdint>
#include <string>

namespace adaptdiff::model {

/// Reads the end-of-central-directory record (zip64 too) and every central directory entry of the zip file at
/// `path` (`file_size` bytes) and checks each entry: stored (method 0) entries claim an uncompressed size equal
/// to their compressed size, compressed entries at most 1032 x theirs (deflate's largest ratio) plus 1 KiB, and
/// compressed data that lies inside the file. Also refuses what would make LibTorch's reader throw from its
/// constructor (and leak its zip state): no records, a first record outside a folder, no `<folder>/version`
/// record, an entry whose local header is missing or names another record. Returns the sum of the uncompressed sizes.
/// Throws ModelError naming `path` when the directory cannot be found or parsed or a claim is out of bounds.
uint64_t check_zip_sizes(const std::string& path, uint64_t file_size);

}  // namespace adaptdiff::model
