#pragma once
// MXNet's indexed RecordIO (dmlc-core recordio, mxnet.recordio), as insightface's training sets use it:
//   .rec  records, each: uint32 magic 0xced7230a, uint32 lrecord = cflag << 29 | length, `length` bytes of
//         data, zero padding to a multiple of 4. A payload that holds the magic at a 4-byte aligned offset is
//         split there into parts with cflag 1 (first), 2 (middle), 3 (last); the magic itself is dropped and
//         the reader puts it back between the parts. cflag 0: a whole record.
//   .idx  text, one line per record: "key\toffset\n" (offset of the record's first part in the .rec).
//   data  of an image record: IRHeader {uint32 flag, float32 label, uint64 id, uint64 id2} (24 bytes), then
//         with flag > 0 `flag` float32 labels, then the encoded image. All little-endian.
// Ref: dmlc-core include/dmlc/recordio.h and src/recordio.cc; mxnet python/mxnet/recordio.py (pack/unpack).
#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace adaptdiff::exporter {

/// RecordIO's magic number.
inline constexpr uint32_t kRecordIOMagic = 0xced7230a;
/// Largest data length of one part (29 bits).
inline constexpr uint32_t kRecordIOMaxLength = (1U << 29U) - 1U;

/// Data of an image record: IRHeader(flag 0, label, id, id2 0) + the encoded image. label: the class
/// (identity) as float32, exact up to 2^24.
std::vector<uint8_t> pack_image_record(float label, uint64_t id, const std::vector<uint8_t>& image);

/// Data of a record whose label is an array (insightface's header record 0 and per-identity records, a
/// (first, last) key range): IRHeader(flag = labels.size(), label 0, id, id2 0) + the labels as float32.
std::vector<uint8_t> pack_label_array_record(const std::vector<float>& labels, uint64_t id);

/// Appends `data` framed as one RecordIO record (split at aligned magic words, padded) to `out`.
/// Throws InputError for a part longer than kRecordIOMaxLength.
void frame_record(const uint8_t* data, size_t size, std::vector<uint8_t>& out);

/// Writes a .rec file record by record and remembers (key, offset) of each. Not thread-safe; one file.
class RecordIOWriter {
 public:
  /// Creates (truncates) `path`. Throws IoError naming the path when it cannot be opened.
  explicit RecordIOWriter(std::string path);
  /// Appends `data` as record `key`; returns its offset. Throws IoError on a write failure.
  uint64_t write(uint64_t key, const std::vector<uint8_t>& data);
  /// Appends the bytes of the file `path` (framed records, e.g. a part written by another RecordIOWriter)
  /// at the end, streamed; returns the offset they start at. Throws IoError naming either file.
  uint64_t append_file(const std::string& path);
  /// Flushes and closes; throws IoError when the data did not reach the file.
  void close();

  /// (key, offset) of every record written with write(), in order.
  const std::vector<std::pair<uint64_t, uint64_t>>& index() const { return index_; }
  uint64_t bytes() const { return offset_; }

 private:
  void append(const std::vector<uint8_t>& bytes);
  std::string path_;
  std::ofstream out_;
  uint64_t offset_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> index_;
  std::vector<uint8_t> buffer_;
};

/// The .idx text of `index` with every offset increased by `base`: "key\toffset\n" per entry.
std::string index_text(const std::vector<std::pair<uint64_t, uint64_t>>& index, uint64_t base = 0);

/// Parses .idx text into (key, offset) pairs. Throws InputError naming `what` and the line when malformed.
std::vector<std::pair<uint64_t, uint64_t>> parse_index(const std::string& text, const std::string& what);

}  // namespace adaptdiff::exporter
