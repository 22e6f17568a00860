#pragma once
// SHA-256 digests (OpenSSL EVP) of files and byte strings, as lowercase hex. Used to record the exact
// model files a run used in the output file's attributes and to verify them on restart.
#include <string>
#include <string_view>

namespace adaptdiff::io {

/// SHA-256 of the file at `path`, read in 256 KiB chunks (constant memory for multi-GB checkpoints).
/// Returns 64 lowercase hex characters, e.g. sha256 of "abc" is "ba7816bf...f20015ad".
/// Throws IoError naming the path and the system error when the file cannot be opened or read
/// (missing, permission denied, a directory, I/O error), or when OpenSSL fails.
std::string sha256_file(const std::string& path);

/// SHA-256 of the bytes of `data` as 64 lowercase hex characters. Throws IoError when OpenSSL fails.
std::string sha256_bytes(std::string_view data);

}  // namespace adaptdiff::io
