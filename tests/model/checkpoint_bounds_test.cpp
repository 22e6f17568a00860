// Regression tests of model::read_state_dict for inputs that a fuzzer (fuzz/fuzz_checkpoint.cpp) or a hostile
// file can produce: claims in headers or pickles that are far larger than the file. Each must be a ModelError
// that names the problem, without allocating what the claim says, overflowing, or recursing without bound.
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "model/checkpoint.hpp"
#include "test_support.hpp"

namespace {

using adaptdiff::ModelError;
using adaptdiff::model::read_state_dict;
using adaptdiff::model::test::read_bytes;
using adaptdiff::model::test::TempFile;

std::string le(uint64_t v, int n) {
  std::string out;
  for (int k = 0; k < n; ++k) out += static_cast<char>((v >> (8 * k)) & 0xff);
  return out;
}
std::string str(const std::string& s) { return "X" + le(s.size(), 4) + s; }  // BINUNICODE
std::string global(const std::string& mod, const std::string& name) { return "c" + mod + "\n" + name + "\n"; }
std::string long1(int64_t v) { return "\x8a\x08" + le(static_cast<uint64_t>(v), 8); }  // LONG1, 8 bytes

// OrderedDict() with one entry 'w' = _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', numel), offset,
// size, stride, False, OrderedDict()).
std::string state_dict_pickle(int64_t numel, int64_t offset, const std::vector<int64_t>& size,
                              const std::vector<int64_t>& stride) {
  std::string p = "\x80\x02" + global("collections", "OrderedDict") + ")R" + str("w");
  p += global("torch._utils", "_rebuild_tensor_v2") + "((" + str("storage") + global("torch", "FloatStorage") +
       str("0") + str("cpu") + long1(numel) + "tQ" + long1(offset) + "(";
  for (int64_t s : size) p += long1(s);
  p += "t(";
  for (int64_t s : stride) p += long1(s);
  p += "t\x89" + global("collections", "OrderedDict") + ")RtRs.";
  return p;
}

void write_archive(const std::string& path, const std::string& pkl, size_t storage_bytes = 64) {
  caffe2::serialize::PyTorchStreamWriter w(path);
  w.writeRecord("data.pkl", pkl.data(), pkl.size());
  const std::string storage(storage_bytes, '\0');
  w.writeRecord("data/0", storage.data(), storage.size());
  w.writeEndOfFile();
}

void expect_model_error(const std::string& path, const std::string& needle) {
  try {
    (void)read_state_dict(path);
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(CheckpointBounds, SmallValidArchiveReads) {  // the builders above make readable files
  TempFile f("ok.pt");
  write_archive(f.path(), state_dict_pickle(16, 4, {3, 4}, {4, 1}));
  const auto sd = read_state_dict(f.path());
  ASSERT_EQ(sd.size(), 1u);
  EXPECT_EQ(sd[0].second.sizes(), (std::vector<int64_t>{3, 4}));
}

TEST(CheckpointBounds, ZipEntryClaimingMoreThanTheFileIsRefusedBeforeAllocating) {
  TempFile f("claim.pt");
  write_archive(f.path(), state_dict_pickle(16, 0, {4}, {1}));
  std::string bytes = read_bytes(f.path());
  // Patch the uncompressed size of every central directory entry (zip64 extra field when the writer used one).
  int patched = 0;
  for (size_t p = bytes.find("PK\x01\x02"); p != std::string::npos; p = bytes.find("PK\x01\x02", p + 4)) {
    uint32_t uncomp = 0;
    std::memcpy(&uncomp, &bytes[p + 24], 4);
    const uint16_t name_len = static_cast<uint8_t>(bytes[p + 28]) | (static_cast<uint8_t>(bytes[p + 29]) << 8);
    if (uncomp != 0xffffffffu) {
      bytes.replace(p + 24, 4, le(0x7fff0000u, 4));
    } else {
      const size_t extra = p + 46 + name_len;
      ASSERT_EQ(bytes.substr(extra, 2), std::string("\x01\x00", 2));
      bytes.replace(extra + 4, 8, le(uint64_t{1} << 40, 8));  // 1 TiB
    }
    ++patched;
  }
  ASSERT_GE(patched, 2);
  f.write(bytes);
  expect_model_error(f.path(), "claims");
}

TEST(CheckpointBounds, ArchivesLibTorchWouldLeakOnAreRefusedFirst) {
  // fuzz_checkpoint: an end-of-central-directory record announcing no entries made LibTorch's reader throw from
  // its constructor and leak 152 bytes of zip state; such files are refused before LibTorch opens them.
  std::string empty = "\xb0\xb7\x03\x04";
  empty += std::string(8, '\0');
  empty += std::string("PK\x05\x06", 4) + std::string(18, '\0');
  TempFile f("empty.pt");
  f.write(empty);
  expect_model_error(f.path(), "holds no records");

  TempFile g("noversion.pt");  // a zip with one record in a folder but no version record
  {
    caffe2::serialize::PyTorchStreamWriter w(g.path());
    w.writeRecord("data.pkl", "}.", 2);
    w.writeEndOfFile();
  }
  std::string bytes = read_bytes(g.path());
  for (size_t p = bytes.find("/version"); p != std::string::npos; p = bytes.find("/version", p + 1))
    bytes.replace(p, 8, "/vErsion");  // the writer adds a version record: rename it in both headers
  g.write(bytes);
  expect_model_error(g.path(), "no record");
}

TEST(CheckpointBounds, EntryWithoutItsLocalHeaderIsRefusedFirst) {
  // fuzz_checkpoint: a damaged local header signature ("\x90K\x03\x04") made LibTorch's reader throw from its
  // constructor and leak; the pre-check compares every entry with its local header.
  TempFile f("local.pt");
  write_archive(f.path(), state_dict_pickle(16, 4, {3, 4}, {4, 1}));
  std::string bytes = read_bytes(f.path());
  ASSERT_EQ(bytes.substr(0, 4), std::string("PK\x03\x04"));
  bytes[0] = '\x90';
  f.write(bytes);
  expect_model_error(f.path(), "not its local header");
}

TEST(CheckpointBounds, StorageSizeThatOverflowsBytesIsRefused) {
  TempFile f("numel.pt");  // 2^62 floats: 2^64 bytes, which wraps a 64-bit byte count to 0 (then 64 bytes "suffice")
  write_archive(f.path(), state_dict_pickle(int64_t{1} << 62, 1000, {2}, {1}));
  expect_model_error(f.path(), "out of range");
}

TEST(CheckpointBounds, SizeTimesStrideOverflowIsRefused) {
  TempFile f("overflow.pt");
  write_archive(f.path(), state_dict_pickle(16, 0, {int64_t{1} << 62, 4}, {4, 1}));
  expect_model_error(f.path(), "overflow");
}

TEST(CheckpointBounds, ViewWithMoreElementsThanItsStorageIsRefused) {
  TempFile f("expand.pt");  // a 1-element storage viewed as 10^6 x 10^6 (stride 0): 4 TB if cloned
  write_archive(f.path(), state_dict_pickle(1, 0, {1000000, 1000000}, {0, 0}));
  expect_model_error(f.path(), "larger than its storage");
}

TEST(CheckpointBounds, DeeplyNestedAndCyclicPicklesAreRefusedWithoutRecursion) {
  TempFile deep("deep.pt");  // 1 tuple nested 10^6 deep: freeing it recursively would overflow the stack
  write_archive(deep.path(), "\x80\x02K\x01" + std::string(1000000, '\x85') + ".");
  expect_model_error(deep.path(), "pickle root is a tuple");
  TempFile cycle("cycle.pt");  // a list appended to itself through the memo (a reference cycle)
  write_archive(cycle.path(), std::string("\x80\x02]q\x00h\x00") + "a.");
  expect_model_error(cycle.path(), "pickle root is a list");
}

}  // namespace
