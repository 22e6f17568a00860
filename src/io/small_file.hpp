#pragma once
// Serial writer of the small HDF5 files the dataset tools exchange: identity files (`contexts`,
// `identity_name`), negative tables, embeddings and scores. Whole datasets at once, written to `<path>.tmp` and renamed,
// so a killed writer never leaves a half file at `path`. Readers: io::H5Reader, h5py, h5dump.
#include <torch/types.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace adaptdiff::io {

/// The content of one small file, datasets at the root.
struct SmallFile {
  /// Numeric datasets, any rank: float32 / float64 / int64 / uint8 CPU tensors, stored with that type.
  std::vector<std::pair<std::string, torch::Tensor>> arrays;
  /// 1-D datasets of variable-length UTF-8 strings.
  std::vector<std::pair<std::string, std::vector<std::string>>> strings;
  /// Scalar string attributes of the root group.
  std::map<std::string, std::string> attributes;
};

/// Writes `content` to `path` (replacing an existing file) through `<path>.tmp` and a rename.
/// Throws InputError for an unsupported tensor type, IoError (naming the file and dataset) when HDF5 or the
/// rename fails.
void write_small_file(const std::string& path, const SmallFile& content);

/// Checks, before any work, that a tool may write the file `path`: creates missing parent folders, then
/// requires the folder to be writable and `path` not to exist unless `overwrite`. `tool` starts the message.
/// Throws InputError (bad command line: the caller exits 2 and nothing was written) naming the path.
void check_new_output(const std::string& path, bool overwrite, const std::string& tool);

}  // namespace adaptdiff::io
