// src/export on its own: RecordIO framing against the independent reader (recordio_reader.hpp), names that
// sort as numbers, anti-aliased resizing, encoding round trips (decoded by stb_image), grid layout, manifest.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "core/error.hpp"
#include "decode.hpp"
#include "export/files.hpp"
#include "export/image_ops.hpp"
#include "export/recordio.hpp"
#include "recordio_reader.hpp"
#include "support/expect_error.hpp"

namespace fs = std::filesystem;
using namespace adaptdiff::exporter;
using adaptdiff::InputError;
using adaptdiff::test::expect_error;

namespace {

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("adaptdiff_export_unit_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }
const std::string kMagicBytes("\x0a\x23\xd7\xce", 4);  // 0xced7230a little-endian

TEST(RecordIO, FramingByteLayout) {
  std::vector<uint8_t> out;
  frame_record(reinterpret_cast<const uint8_t*>("abcde"), 5, out);
  ASSERT_EQ(out.size(), 8U + 8U);  // header + 5 bytes padded to 8
  EXPECT_EQ(std::string(out.begin(), out.begin() + 4), kMagicBytes);
  EXPECT_EQ(oracle::little<uint32_t>(std::string(out.begin(), out.end()), 4), 5U);  // cflag 0, length 5
  EXPECT_EQ(std::string(out.begin() + 8, out.begin() + 13), "abcde");
  EXPECT_EQ(std::string(out.begin() + 13, out.end()), std::string(3, '\0'));
}

TEST(RecordIO, RecordsReadBackByIndependentReaderIncludingEmbeddedMagic) {
  const fs::path d = temp_dir("records");
  std::mt19937 rng(3);
  std::vector<std::string> payloads = {"", "x", "abcd", "abcdefg"};
  std::string random(1001, '\0');
  for (auto& c : random) c = static_cast<char>(rng() & 0xff);
  payloads.push_back(random);
  // The magic word at aligned offsets: at the start, in the middle twice in a row, and as the last word.
  payloads.push_back(kMagicBytes + "12345678" + kMagicBytes + kMagicBytes + "zz" + "yy" + kMagicBytes);
  // ... and at an unaligned offset (must stay a plain byte sequence).
  payloads.push_back("a" + kMagicBytes + "bcd");
  RecordIOWriter w((d / "t.rec").string());
  for (size_t i = 0; i < payloads.size(); ++i) w.write(100 + i, bytes_of(payloads[i]));
  w.close();
  std::ofstream((d / "t.idx").string()) << index_text(w.index());

  const auto idx = oracle::read_idx((d / "t.idx").string());
  const std::string rec = oracle::slurp((d / "t.rec").string());
  ASSERT_EQ(idx.size(), payloads.size());
  EXPECT_EQ(rec.size() % 4, 0U);
  EXPECT_EQ(rec.size(), w.bytes());
  for (size_t i = 0; i < payloads.size(); ++i) {
    ASSERT_EQ(idx.count(100 + i), 1U);
    EXPECT_EQ(oracle::read_data(rec, idx.at(100 + i)), payloads[i]) << "record " << i;
  }
  // The split record: 5 parts (4 aligned magic words), so 5 headers of 8 bytes.
  const size_t split = idx.at(105), next = idx.at(106);
  EXPECT_EQ(next - split, 5 * 8 + 8 + 4) << "parts: '', '12345678', '', 'zzyy', ''";
}

TEST(RecordIO, ImageAndLabelArrayHeaders) {
  const auto img = pack_image_record(17.0F, 42, bytes_of("PNGDATA"));
  const auto r = oracle::unpack(std::string(img.begin(), img.end()));
  EXPECT_EQ(r.flag, 0U);
  EXPECT_EQ(r.label, 17.0F);
  EXPECT_EQ(r.id, 42U);
  EXPECT_EQ(r.id2, 0U);
  EXPECT_EQ(r.payload, "PNGDATA");
  const auto head = pack_label_array_record({65.0F, 81.0F}, 0);
  const auto h = oracle::unpack(std::string(head.begin(), head.end()));
  EXPECT_EQ(h.flag, 2U);
  EXPECT_EQ(h.labels, (std::vector<float>{65.0F, 81.0F}));
  EXPECT_TRUE(h.payload.empty());
}

TEST(RecordIO, AppendFileAndIndexRoundTrip) {
  const fs::path d = temp_dir("append");
  RecordIOWriter part((d / "p.rec").string());
  part.write(1, bytes_of("one"));
  part.write(2, bytes_of("second"));
  part.close();
  RecordIOWriter all((d / "a.rec").string());
  all.write(0, bytes_of("head"));
  const uint64_t base = all.append_file((d / "p.rec").string());
  all.close();
  EXPECT_EQ(base, 12U);  // after "head": 8 bytes of header + 4 of data
  const auto entries = parse_index(index_text(part.index(), base), "test");
  const std::string rec = oracle::slurp((d / "a.rec").string());
  ASSERT_EQ(entries.size(), 2U);
  EXPECT_EQ(oracle::read_data(rec, entries[0].second), "one");
  EXPECT_EQ(oracle::read_data(rec, entries[1].second), "second");
  expect_error<InputError>([] { parse_index("1\t2\nnot a line\n", "x.idx"); }, {"x.idx line 2"});
}

TEST(Names, ZeroPaddingMakesStringOrderNumericOrder) {
  EXPECT_EQ(pad_width(1), 1);
  EXPECT_EQ(pad_width(10), 1);
  EXPECT_EQ(pad_width(11), 2);
  EXPECT_EQ(pad_width(101), 3);
  EXPECT_EQ(zero_padded(7, 3), "007");
  EXPECT_EQ(zero_padded(123, 2), "123");
  for (int64_t n : {1, 2, 9, 10, 11, 12, 99, 100, 101, 1000, 1001, 10001}) {
    std::vector<std::string> names;
    for (int64_t v = 0; v < n; ++v) names.push_back(zero_padded(v, pad_width(n)));
    std::vector<std::string> sorted = names;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, names) << "n = " << n;
    EXPECT_EQ(names.back().size(), std::to_string(n - 1).size()) << "n = " << n;
  }
  // Without padding "10" sorts before "2": the case the padding exists for.
  std::vector<std::string> plain{"2", "10"};
  std::sort(plain.begin(), plain.end());
  EXPECT_EQ(plain.front(), "10");
}

Image checkerboard(int n) {
  Image img(n, n);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) std::fill_n(img.pixel(x, y), 3, ((x + y) % 2) != 0 ? 255 : 0);
  return img;
}

TEST(Resize, ConstantStaysConstant) {
  for (const auto& [from, to] : std::vector<std::pair<int, int>>{{128, 112}, {128, 32}, {32, 112}, {7, 3}}) {
    Image c(from, from, 173);
    const Image r = resize(c, to, to);
    ASSERT_EQ(r.width, to);
    ASSERT_EQ(r.height, to);
    EXPECT_TRUE(std::all_of(r.rgb.begin(), r.rgb.end(), [](uint8_t v) { return v == 173; })) << from << "->" << to;
  }
}

TEST(Resize, CheckerboardAveragesToItsMean) {
  // A one-pixel checkerboard has no content below the Nyquist frequency of a smaller image: an anti-aliased
  // filter averages it towards 127.5; point sampling keeps 0s and 255s (RMS deviation 127.5). Integer factors
  // (64, 32) come out flat to a few levels; 128 -> 112 (factor 0.875, the usual FR crop size) is the hard case
  // for any short filter (Mitchell leaves an RMS of about 17) and 96 lies between.
  struct Case {
    int to;
    double max_rms, max_worst;
  };
  for (const Case c : {Case{112, 20.0, 64.0}, Case{96, 5.0, 24.0}, Case{64, 1.0, 8.0}, Case{32, 1.0, 8.0}}) {
    const Image r = resize(checkerboard(128), c.to, c.to);
    double sum = 0, squares = 0, worst = 0;
    for (uint8_t v : r.rgb) {
      sum += v;
      squares += (v - 127.5) * (v - 127.5);
      worst = std::max(worst, std::abs(v - 127.5));
    }
    const auto n = static_cast<double>(r.rgb.size());
    EXPECT_NEAR(sum / n, 127.5, 1.0) << "128 -> " << c.to << ": mean";
    EXPECT_LE(std::sqrt(squares / n), c.max_rms) << "128 -> " << c.to << ": RMS deviation from 127.5";
    EXPECT_LE(worst, c.max_worst) << "128 -> " << c.to << ": max |pixel - 127.5|";
  }
}

TEST(Resize, RejectsBadSizes) {
  expect_error<InputError>([] { resize(Image(4, 4), 0, 4); }, {"sizes must be >= 1"});
}

TEST(Encode, PngRoundTripIsExact) {
  Image img(37, 23);
  std::mt19937 rng(5);
  for (auto& v : img.rgb) v = static_cast<uint8_t>(rng() & 0xff);
  const auto png = encode(img, ImageFormat::kPng);
  const auto d = oracle::decode(std::string(png.begin(), png.end()));
  EXPECT_EQ(d.width, 37);
  EXPECT_EQ(d.height, 23);
  EXPECT_EQ(d.rgb, img.rgb);
}

TEST(Encode, JpegRoundTripWithinTolerance) {
  // A smooth image (gradients): JPEG at quality 95 stays within a few levels.
  Image img(64, 48);
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 64; ++x) {
      uint8_t* p = img.pixel(x, y);
      p[0] = static_cast<uint8_t>(x * 4);
      p[1] = static_cast<uint8_t>(y * 5);
      p[2] = static_cast<uint8_t>(128 + 60 * std::sin(x * 0.2));
    }
  const auto jpg = encode(img, ImageFormat::kJpeg, 95);
  const auto d = oracle::decode(std::string(jpg.begin(), jpg.end()));
  ASSERT_EQ(d.rgb.size(), img.rgb.size());
  double sum = 0;
  int worst = 0;
  for (size_t i = 0; i < d.rgb.size(); ++i) {
    const int e = std::abs(static_cast<int>(d.rgb[i]) - img.rgb[i]);
    sum += e;
    worst = std::max(worst, e);
  }
  EXPECT_LE(sum / static_cast<double>(d.rgb.size()), 2.0);
  EXPECT_LE(worst, 16);
  expect_error<InputError>([&] { encode(img, ImageFormat::kJpeg, 0); }, {"quality must be in 1..100"});
}

TEST(Grid, LayoutLikeMakeGrid) {
  std::vector<Image> cells;
  for (int i = 0; i < 6; ++i) cells.emplace_back(5, 4, static_cast<uint8_t>(10 + i));
  cells[4] = Image();  // not done: stays background
  const Image g = compose_grid(cells, 4, 2, 0);
  ASSERT_EQ(g.width, 4 * (5 + 2) + 2);
  ASSERT_EQ(g.height, 2 * (4 + 2) + 2);
  for (int i = 0; i < 6; ++i) {
    const int x0 = 2 + (i % 4) * 7, y0 = 2 + (i / 4) * 6;
    EXPECT_EQ(g.pixel(x0, y0)[0], i == 4 ? 0 : 10 + i) << "cell " << i;
    EXPECT_EQ(g.pixel(x0 + 4, y0 + 3)[2], i == 4 ? 0 : 10 + i) << "cell " << i;
    EXPECT_EQ(g.pixel(x0 - 1, y0)[0], 0) << "gap left of cell " << i;
  }
  expect_error<InputError>([] { compose_grid({Image(2, 2), Image(3, 2)}, 4, 2, 0); }, {"3x2 among cells of 2x2"});
}

TEST(Font, DrawsDigitsInTheirBox) {
  Image img(40, 20, 0);
  const uint8_t white[3] = {255, 255, 255};
  EXPECT_EQ(draw_number(img, 108, 2, 3, 2, white), number_width(108, 2));
  EXPECT_EQ(number_width(108, 2), 3 * 8 - 2);
  int lit = 0, outside = 0;
  for (int y = 0; y < 20; ++y)
    for (int x = 0; x < 40; ++x) {
      if (img.pixel(x, y)[0] == 0) continue;
      ++lit;
      if (x < 2 || x >= 2 + 22 || y < 3 || y >= 3 + 10) ++outside;
    }
  // "1" lights 8 cells of 3x5 in this font, "0" 12, "8" 13: 33 cells of 2x2 pixels.
  EXPECT_EQ(lit, 33 * 4);
  EXPECT_EQ(outside, 0);
}

TEST(Files, ManifestRefusesOtherSettings) {
  const fs::path d = temp_dir("manifest");
  check_or_write_manifest(d.string(), {{"format", "grid"}, {"size", "112"}});
  check_or_write_manifest(d.string(), {{"format", "grid"}, {"size", "112"}});  // same: fine
  expect_error<InputError>([&] { check_or_write_manifest(d.string(), {{"format", "grid"}, {"size", "64"}}); },
                           {"size: '112' there, '64' now", "HINT"});
}

TEST(Files, AtomicWriteAndUnwritableFolder) {
  const fs::path d = temp_dir("files");
  write_file_atomic((d / "a.txt").string(), std::string("hello"));
  bool exists = false;
  EXPECT_EQ(read_file((d / "a.txt").string(), &exists), "hello");
  EXPECT_TRUE(exists);
  EXPECT_FALSE(fs::exists(d / "a.txt.tmp"));
  read_file((d / "missing").string(), &exists);
  EXPECT_FALSE(exists);
  expect_error<InputError>([&] { ensure_writable_folder((d / "a.txt" / "sub").string()); },
                           {"cannot create the output folder"});
}

}  // namespace
