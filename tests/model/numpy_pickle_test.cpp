// NumPy arrays inside pickles: raw bytes to tensors (byte orders, Fortran order, dtypes) and protocol 2's
// latin-1 text for bytes, against values written out by hand.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <string>

#include "core/error.hpp"
#include "model/numpy_pickle.hpp"

namespace adaptdiff::model::pickle {
namespace {

template <typename T>
std::string raw(std::initializer_list<T> values, bool big_endian = false) {
  std::string out;
  for (T v : values) {
    std::string b(sizeof(T), '\0');
    std::memcpy(b.data(), &v, sizeof(T));
    if (big_endian) b = std::string(b.rbegin(), b.rend());
    out += b;
  }
  return out;
}

TEST(NumpyArray, LittleAndBigEndianFloat64AndFloat32) {
  const auto le = numpy_array({3}, "f8", '<', false, raw<double>({1.5, -2.25, 1e300}), "t");
  EXPECT_EQ(le.scalar_type(), torch::kDouble);
  EXPECT_EQ(le[2].item<double>(), 1e300);
  const auto be = numpy_array({3}, "f8", '>', false, raw<double>({1.5, -2.25, 1e300}, true), "t");
  EXPECT_TRUE(torch::equal(le, be));
  const auto f4 = numpy_array({2}, "f4", '>', false, raw<float>({0.1f, 3.0f}, true), "t");
  EXPECT_EQ(f4[0].item<float>(), 0.1f);
  EXPECT_EQ(f4[1].item<float>(), 3.0f);
}

TEST(NumpyArray, FortranOrderIsTransposedIntoCOrder) {
  // a = [[1, 2, 3], [4, 5, 6]] stored column by column: 1 4 2 5 3 6.
  const auto a = numpy_array({2, 3}, "f4", '<', true, raw<float>({1, 4, 2, 5, 3, 6}), "t");
  EXPECT_TRUE(a.is_contiguous());
  EXPECT_TRUE(torch::equal(a, torch::tensor({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}).reshape({2, 3})));
}

TEST(NumpyArray, Float16AndIntegers) {
  // 0x3C00 = 1.0, 0xC000 = -2.0, 0x3555 = 0.333251953125 in IEEE half.
  const auto h = numpy_array({3}, "f2", '<', false, raw<uint16_t>({0x3C00, 0xC000, 0x3555}), "t");
  EXPECT_EQ(h.scalar_type(), torch::kHalf);
  EXPECT_TRUE(torch::equal(h.to(torch::kFloat), torch::tensor({1.0f, -2.0f, 0.333251953125f})));
  const auto i = numpy_array({2}, "i8", '>', false, raw<int64_t>({-3, 1LL << 40}, true), "t");
  EXPECT_EQ(i[0].item<int64_t>(), -3);
  EXPECT_EQ(i[1].item<int64_t>(), 1LL << 40);
}

TEST(NumpyArray, RefusesOtherDtypesAndWrongSizesNamingThem) {
  try {
    numpy_array({1}, "c8", '<', false, std::string(8, '\0'), "file 'x'");
    ADD_FAILURE() << "complex accepted";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("'<c8'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("file 'x'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(numpy_array({512}, "f4", '<', false, std::string(511 * 4, '\0'), "t"), ModelError);
  EXPECT_THROW(numpy_array({-1}, "f4", '<', false, "", "t"), ModelError);
  EXPECT_THROW(numpy_array({1LL << 62, 1LL << 62}, "f4", '<', false, "", "t"), ModelError);
}

TEST(Latin1, Utf8TextOfCodePointsBelow256GivesTheBytes) {
  EXPECT_EQ(latin1_bytes("a\xc3\xbf\xc2\x80", "t"), std::string("a\xff\x80"));
  EXPECT_EQ(latin1_bytes("", "t"), "");
  EXPECT_THROW(latin1_bytes("\xe2\x82\xac", "t"), ModelError);  // U+20AC is not latin-1
  EXPECT_THROW(latin1_bytes("\xc3", "t"), ModelError);          // truncated sequence
  EXPECT_THROW(latin1_bytes("\xc5\x81", "t"), ModelError);      // U+0141 > 255
}

}  // namespace
}  // namespace adaptdiff::model::pickle
