#include "engine/protocol/utf8.hpp"

#include <gtest/gtest.h>

#include "test_bytes.hpp"

namespace wsedge::protocol {
namespace {

using test::bytes;

bool valid(std::initializer_list<int> v) {
  auto b = bytes(v);
  return Utf8Validator::valid(b.data(), b.size());
}

TEST(Utf8, AcceptsValidText) {
  EXPECT_TRUE(valid({}));
  EXPECT_TRUE(valid({'h', 'i'}));
  EXPECT_TRUE(valid({0xC2, 0x80}));              // U+0080
  EXPECT_TRUE(valid({0xDF, 0xBF}));              // U+07FF
  EXPECT_TRUE(valid({0xE0, 0xA0, 0x80}));        // U+0800
  EXPECT_TRUE(valid({0xED, 0x9F, 0xBF}));        // U+D7FF, just below the surrogates
  EXPECT_TRUE(valid({0xEE, 0x80, 0x80}));        // U+E000, just above them
  EXPECT_TRUE(valid({0xEF, 0xBF, 0xBF}));        // U+FFFF
  EXPECT_TRUE(valid({0xF0, 0x90, 0x80, 0x80}));  // U+10000
  EXPECT_TRUE(valid({0xF4, 0x8F, 0xBF, 0xBF}));  // U+10FFFF
  auto hello = bytes("κόσμε, мир, 世界, 🌍");
  EXPECT_TRUE(Utf8Validator::valid(hello.data(), hello.size()));
}

TEST(Utf8, RejectsInvalidBytes) {
  EXPECT_FALSE(valid({0x80}));  // lone continuation
  EXPECT_FALSE(valid({0xBF}));
  EXPECT_FALSE(valid({0xC0, 0x80}));        // overlong NUL
  EXPECT_FALSE(valid({0xC1, 0xBF}));        // overlong
  EXPECT_FALSE(valid({0xE0, 0x80, 0x80}));  // overlong 3-byte
  EXPECT_FALSE(valid({0xE0, 0x9F, 0xBF}));
  EXPECT_FALSE(valid({0xF0, 0x80, 0x80, 0x80}));  // overlong 4-byte
  EXPECT_FALSE(valid({0xF0, 0x8F, 0xBF, 0xBF}));
  EXPECT_FALSE(valid({0xED, 0xA0, 0x80}));        // U+D800 surrogate
  EXPECT_FALSE(valid({0xED, 0xBF, 0xBF}));        // U+DFFF surrogate
  EXPECT_FALSE(valid({0xF4, 0x90, 0x80, 0x80}));  // U+110000
  EXPECT_FALSE(valid({0xF5, 0x80, 0x80, 0x80}));
  EXPECT_FALSE(valid({0xFE}));
  EXPECT_FALSE(valid({0xFF}));
  EXPECT_FALSE(valid({0xC2, 0x41}));  // lead then ASCII
}

TEST(Utf8, TruncatedIsIncompleteNotInvalid) {
  Utf8Validator v;
  auto b = bytes({0xF0, 0x9F, 0x8C});
  EXPECT_TRUE(v.feed(b.data(), b.size()));
  EXPECT_FALSE(v.complete());
  auto last = bytes({0x8D});
  EXPECT_TRUE(v.feed(last.data(), last.size()));
  EXPECT_TRUE(v.complete());
}

TEST(Utf8, FailsFastOnFirstInvalidByte) {
  // The validator must refuse as soon as the bad byte arrives, before the message ends.
  Utf8Validator v;
  auto good = bytes("ok so far ");
  EXPECT_TRUE(v.feed(good.data(), good.size()));
  auto bad = bytes({0xCE, 0xBA, 0xF4, 0x90});
  EXPECT_FALSE(v.feed(bad.data(), bad.size()));
}

TEST(Utf8, SplitAtEveryByteMatchesWhole) {
  auto text =
      bytes("ASCII run long enough for the vector path, then κόσμε 🌍 and more ASCII text here.");
  for (std::size_t cut = 0; cut <= text.size(); ++cut) {
    Utf8Validator v;
    ASSERT_TRUE(v.feed(text.data(), cut));
    ASSERT_TRUE(v.feed(text.data() + cut, text.size() - cut));
    ASSERT_TRUE(v.complete()) << cut;
  }
  auto broken = text;
  broken[60] = std::byte{0xFF};
  for (std::size_t cut = 0; cut <= broken.size(); ++cut) {
    Utf8Validator v;
    bool ok = v.feed(broken.data(), cut) && v.feed(broken.data() + cut, broken.size() - cut);
    ASSERT_FALSE(ok) << cut;
  }
}

TEST(Utf8, InvalidByteAfterLongAsciiRun) {
  test::Bytes b(1000, std::byte{'a'});
  b[777] = std::byte{0x80};
  EXPECT_FALSE(Utf8Validator::valid(b.data(), b.size()));
}

}  // namespace
}  // namespace wsedge::protocol
