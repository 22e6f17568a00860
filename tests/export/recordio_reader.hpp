#pragma once
// Test oracle: a reader of MXNet indexed RecordIO written from the format's description only (dmlc-core's
// recordio.h comment and mxnet's recordio.py docs), independent of src/export/recordio.cpp:
//   .idx: lines "key<TAB>offset"; .rec at offset: [magic 0xced7230a][lrec: cflag = lrec >> 29, len = lrec & (2^29-1)]
//   [len bytes][pad to 4]; cflag 1/2 continue the record, with the magic word re-inserted between parts; 3 ends.
//   Record data: IRHeader "<IfQQ" (flag, label, id, id2); flag > 0: flag float32 labels follow; then the payload.
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace oracle {

struct Record {
  uint32_t flag = 0;
  float label = 0;
  uint64_t id = 0, id2 = 0;
  std::vector<float> labels;     // flag > 0
  std::string payload;           // the encoded image
};

template <typename T>
T little(const std::string& s, size_t at) {
  if (at + sizeof(T) > s.size()) throw std::runtime_error("oracle: read past the end");
  T v;
  std::memcpy(&v, s.data() + at, sizeof(T));  // x86-64: little-endian like the format
  return v;
}

/// key -> offset from a .idx file.
inline std::map<uint64_t, uint64_t> read_idx(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("oracle: no " + path);
  std::map<uint64_t, uint64_t> idx;
  uint64_t key = 0, offset = 0;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    if (!(ls >> key >> offset)) throw std::runtime_error("oracle: bad idx line '" + line + "'");
    if (!idx.emplace(key, offset).second) throw std::runtime_error("oracle: duplicate key " + std::to_string(key));
  }
  return idx;
}

/// The whole record data at `offset` of the .rec contents `rec`, parts joined.
inline std::string read_data(const std::string& rec, uint64_t offset) {
  std::string data;
  size_t at = offset;
  for (;;) {
    if (little<uint32_t>(rec, at) != 0xced7230aU) throw std::runtime_error("oracle: bad magic at " + std::to_string(at));
    const uint32_t lrec = little<uint32_t>(rec, at + 4);
    const uint32_t cflag = lrec >> 29, len = lrec & ((1U << 29) - 1);
    if (at + 8 + len > rec.size()) throw std::runtime_error("oracle: truncated record");
    data.append(rec, at + 8, len);
    at += 8 + ((len + 3) / 4) * 4;
    if (cflag == 0 || cflag == 3) return data;
    if (cflag != 1 && cflag != 2) throw std::runtime_error("oracle: bad cflag");
    const uint32_t magic = 0xced7230aU;
    data.append(reinterpret_cast<const char*>(&magic), 4);
  }
}

inline Record unpack(const std::string& data) {
  Record r;
  r.flag = little<uint32_t>(data, 0);
  r.label = little<float>(data, 4);
  r.id = little<uint64_t>(data, 8);
  r.id2 = little<uint64_t>(data, 16);
  size_t at = 24;
  for (uint32_t i = 0; i < r.flag; ++i, at += 4) r.labels.push_back(little<float>(data, at));
  r.payload = data.substr(at);
  return r;
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("oracle: no " + path);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

}  // namespace oracle
