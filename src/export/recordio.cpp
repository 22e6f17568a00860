#include "export/recordio.hpp"

#include <cerrno>
#include <cstring>
#include <sstream>

#include "core/error.hpp"

namespace adaptdiff::exporter {

namespace {
void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_u64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_f32(std::vector<uint8_t>& out, float v) {
  uint32_t bits = 0;
  std::memcpy(&bits, &v, 4);
  put_u32(out, bits);
}
uint32_t get_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}
void put_part(std::vector<uint8_t>& out, uint32_t cflag, const uint8_t* data, size_t size) {
  if (size > kRecordIOMaxLength) {
    throw InputError("export::frame_record: a record part of " + std::to_string(size) +
                     " bytes exceeds RecordIO's limit of 2^29 - 1");
  }
  put_u32(out, kRecordIOMagic);
  put_u32(out, cflag << 29U | static_cast<uint32_t>(size));
  out.insert(out.end(), data, data + size);
  out.resize(out.size() + (4 - size % 4) % 4, 0);
}
}  // namespace

std::vector<uint8_t> pack_image_record(float label, uint64_t id, const std::vector<uint8_t>& image) {
  std::vector<uint8_t> out;
  out.reserve(24 + image.size());
  put_u32(out, 0);
  put_f32(out, label);
  put_u64(out, id);
  put_u64(out, 0);
  out.insert(out.end(), image.begin(), image.end());
  return out;
}

std::vector<uint8_t> pack_label_array_record(const std::vector<float>& labels, uint64_t id) {
  std::vector<uint8_t> out;
  put_u32(out, static_cast<uint32_t>(labels.size()));
  put_f32(out, 0.0F);
  put_u64(out, id);
  put_u64(out, 0);
  for (float v : labels) put_f32(out, v);
  return out;
}

void frame_record(const uint8_t* data, size_t size, std::vector<uint8_t>& out) {
  // Split at every magic word at a 4-byte aligned offset (the magic is dropped; the reader re-inserts it).
  size_t begin = 0;
  bool split = false;
  for (size_t i = 0; i + 4 <= size; i += 4) {
    if (get_u32(data + i) != kRecordIOMagic) continue;
    put_part(out, split ? 2U : 1U, data + begin, i - begin);
    split = true;
    begin = i + 4;
  }
  put_part(out, split ? 3U : 0U, data + begin, size - begin);
}

RecordIOWriter::RecordIOWriter(std::string path) : path_(std::move(path)) {
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) throw IoError("export::RecordIOWriter: cannot create '" + path_ + "': " + std::strerror(errno));
}

void RecordIOWriter::append(const std::vector<uint8_t>& bytes) {
  out_.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out_) throw IoError("export::RecordIOWriter: writing '" + path_ + "' failed: " + std::strerror(errno));
  offset_ += bytes.size();
}

uint64_t RecordIOWriter::write(uint64_t key, const std::vector<uint8_t>& data) {
  buffer_.clear();
  frame_record(data.data(), data.size(), buffer_);
  const uint64_t at = offset_;
  append(buffer_);
  index_.emplace_back(key, at);
  return at;
}

uint64_t RecordIOWriter::append_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("export::RecordIOWriter: cannot read '" + path + "': " + std::strerror(errno));
  const uint64_t at = offset_;
  buffer_.resize(size_t{8} << 20);
  while (in) {
    in.read(reinterpret_cast<char*>(buffer_.data()), static_cast<std::streamsize>(buffer_.size()));
    const auto got = static_cast<size_t>(in.gcount());
    if (got == 0) break;
    out_.write(reinterpret_cast<const char*>(buffer_.data()), static_cast<std::streamsize>(got));
    if (!out_) throw IoError("export::RecordIOWriter: writing '" + path_ + "' failed: " + std::strerror(errno));
    offset_ += got;
  }
  if (in.bad()) throw IoError("export::RecordIOWriter: reading '" + path + "' failed: " + std::strerror(errno));
  return at;
}

void RecordIOWriter::close() {
  out_.flush();
  const bool ok = static_cast<bool>(out_);
  out_.close();
  if (!ok || out_.fail()) throw IoError("export::RecordIOWriter: closing '" + path_ + "' failed: " + std::strerror(errno));
}

std::string index_text(const std::vector<std::pair<uint64_t, uint64_t>>& index, uint64_t base) {
  std::string text;
  text.reserve(index.size() * 16);
  for (const auto& [key, offset] : index) text += std::to_string(key) + '\t' + std::to_string(offset + base) + '\n';
  return text;
}

std::vector<std::pair<uint64_t, uint64_t>> parse_index(const std::string& text, const std::string& what) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  std::istringstream in(text);
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    const auto tab = line.find('\t');
    try {
      if (tab == std::string::npos) throw std::invalid_argument("no tab");
      size_t used = 0;
      const uint64_t key = std::stoull(line.substr(0, tab), &used);
      if (used != tab) throw std::invalid_argument("key");
      const std::string off = line.substr(tab + 1);
      const uint64_t offset = std::stoull(off, &used);
      if (used != off.size()) throw std::invalid_argument("offset");
      out.emplace_back(key, offset);
    } catch (const std::exception&) {
      throw InputError("export::parse_index: " + what + " line " + std::to_string(n) + " is not 'key<TAB>offset': '" +
                       line + "'");
    }
  }
  return out;
}

}  // namespace adaptdiff::exporter
