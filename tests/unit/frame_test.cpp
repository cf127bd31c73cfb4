#include "engine/protocol/frame.hpp"

#include <gtest/gtest.h>

#include "engine/protocol/unmask.hpp"
#include "test_bytes.hpp"

namespace wsedge::protocol {
namespace {

using test::bytes;

FrameHeader parse(const test::Bytes& b) {
  FrameHeader h{};
  EXPECT_EQ(parse_frame_header(b.data(), b.size(), h), HeaderParse::kOk);
  return h;
}

// RFC 6455 §5.7 examples.
TEST(Frame, RfcUnmaskedHello) {
  auto b = bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
  FrameHeader h = parse(b);
  EXPECT_TRUE(h.fin);
  EXPECT_EQ(h.opcode, 1);
  EXPECT_FALSE(h.masked);
  EXPECT_EQ(h.payload_len, 5u);
  EXPECT_EQ(h.size, 2);
}

TEST(Frame, RfcMaskedHello) {
  auto b = bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  FrameHeader h = parse(b);
  EXPECT_TRUE(h.masked);
  EXPECT_EQ(h.size, 6);
  apply_mask(b.data() + h.size, 5, h.mask_key);
  EXPECT_EQ(test::str({b.data() + h.size, 5}), "Hello");
}

TEST(Frame, RfcFragmentsAndControl) {
  FrameHeader a = parse(bytes({0x01, 0x03, 0x48, 0x65, 0x6c}));
  EXPECT_FALSE(a.fin);
  EXPECT_EQ(a.opcode, 1);
  FrameHeader b = parse(bytes({0x80, 0x02, 0x6c, 0x6f}));
  EXPECT_TRUE(b.fin);
  EXPECT_EQ(b.opcode, 0);
  FrameHeader ping = parse(bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  EXPECT_EQ(ping.opcode, 9);
  FrameHeader pong =
      parse(bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  EXPECT_EQ(pong.opcode, 10);
  EXPECT_TRUE(pong.masked);
}

TEST(Frame, RfcSixteenAndSixtyFourBitLengths) {
  FrameHeader h16 = parse(bytes({0x82, 0x7E, 0x01, 0x00}));
  EXPECT_EQ(h16.payload_len, 256u);
  EXPECT_EQ(h16.size, 4);
  FrameHeader h64 = parse(bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}));
  EXPECT_EQ(h64.payload_len, 65536u);
  EXPECT_EQ(h64.size, 10);
}

TEST(Frame, EverySizeEncodingRoundTrips) {
  for (std::uint64_t len :
       {0ull, 1ull, 125ull, 126ull, 127ull, 65535ull, 65536ull, 1ull << 32, (1ull << 63) - 1}) {
    for (bool masked : {false, true}) {
      std::byte out[kMaxFrameHeader];
      std::uint32_t key = 0x01020304;
      std::size_t n = write_frame_header(out, true, Opcode::kBinary, len, masked ? &key : nullptr);
      std::size_t expect = (len < 126 ? 2 : len <= 0xFFFF ? 4 : 10) + (masked ? 4 : 0);
      ASSERT_EQ(n, expect) << len;
      FrameHeader h{};
      for (std::size_t cut = 0; cut < n; ++cut) {
        ASSERT_EQ(parse_frame_header(out, cut, h), HeaderParse::kNeedMore) << len << " cut " << cut;
      }
      ASSERT_EQ(parse_frame_header(out, n, h), HeaderParse::kOk);
      EXPECT_EQ(h.payload_len, len);
      EXPECT_EQ(h.masked, masked);
      if (masked) {
        EXPECT_EQ(h.mask_key, key);
      }
      EXPECT_EQ(frame_header_size(out), n);
    }
  }
}

TEST(Frame, SixtyFourBitLengthWithTopBitIsRejected) {
  auto b = bytes({0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0});
  FrameHeader h{};
  EXPECT_EQ(parse_frame_header(b.data(), b.size(), h), HeaderParse::kBadLength);
}

TEST(Frame, LengthsMustBeMinimallyEncoded) {
  FrameHeader h{};
  for (const test::Bytes& b : {bytes({0x82, 0x7E, 0x00, 0x00}), bytes({0x82, 0x7E, 0x00, 0x7D}),
                               bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0}),
                               bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF})}) {
    EXPECT_EQ(parse_frame_header(b.data(), b.size(), h), HeaderParse::kNonMinimal) << b.size();
  }
  // The smallest length each encoding may carry.
  EXPECT_EQ(parse(bytes({0x82, 0x7E, 0x00, 0x7E})).payload_len, 126u);
  EXPECT_EQ(parse(bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0})).payload_len, 0x10000u);
}

TEST(Frame, WriterSetsTheRsvBitsItIsGiven) {
  for (std::uint8_t rsv : {0x00, 0x40, 0x20, 0x10, 0x70}) {
    std::byte out[kMaxFrameHeader];
    std::size_t n = write_frame_header(out, false, Opcode::kText, 3, nullptr, rsv);
    FrameHeader h = parse(test::Bytes(out, out + n));
    EXPECT_EQ(h.rsv, rsv);
    EXPECT_FALSE(h.fin);
    EXPECT_EQ(h.opcode, 1);
    EXPECT_EQ(h.payload_len, 3u);
  }
  // Bits outside RSV1..3 cannot corrupt FIN or the opcode.
  std::byte out[kMaxFrameHeader];
  write_frame_header(out, false, Opcode::kText, 0, nullptr, 0xFF);
  EXPECT_EQ(static_cast<int>(out[0]), 0x71);
}

TEST(Frame, ReservedBitsAndOpcodesAreReportedRaw) {
  FrameHeader h = parse(bytes({0xF3, 0x00}));
  EXPECT_EQ(h.rsv, 0x70);
  EXPECT_EQ(h.opcode, 3);
}

}  // namespace
}  // namespace wsedge::protocol
