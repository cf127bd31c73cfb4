#include "engine/protocol/close_code.hpp"
#include "engine/protocol/frame.hpp"

#include <gtest/gtest.h>

#include <string>

namespace wsedge::protocol {
namespace {

TEST(CloseCode, WireValidity) {
  for (int c = 0; c < 70000; ++c) {
    bool want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
    ASSERT_EQ(is_valid_wire_close_code(static_cast<std::uint16_t>(c)), want && c <= 0xFFFF) << c;
    // A server may also send the IANA-registered 1012-1014 (the bridge's 1013).
    ASSERT_EQ(may_send_close_code(static_cast<std::uint16_t>(c)), want || (c >= 1012 && c <= 1014))
        << c;
    if (c == 0xFFFF) break;
  }
}

TEST(CloseCode, BodyRoundTrip) {
  std::byte out[kMaxControlPayload];
  std::size_t n = write_close_body(out, 4001, "custom");
  CloseBody b;
  ASSERT_EQ(parse_close_body(out, n, b), CloseParse::kOk);
  EXPECT_EQ(b.code, 4001);
  EXPECT_EQ(b.reason, "custom");
  EXPECT_EQ(write_close_body(out, close_code::kNoStatus, "ignored"), 0u);
  ASSERT_EQ(parse_close_body(out, 0, b), CloseParse::kOk);
  EXPECT_EQ(b.code, close_code::kNoStatus);
}

TEST(CloseCode, LongReasonIsCutOnACharacterBoundary) {
  std::string reason;
  while (reason.size() < 200) reason += "é";  // two bytes each
  std::byte out[kMaxControlPayload];
  std::size_t n = write_close_body(out, 1000, reason);
  EXPECT_LE(n, kMaxControlPayload);
  CloseBody b;
  EXPECT_EQ(parse_close_body(out, n, b), CloseParse::kOk);  // still valid UTF-8
  EXPECT_EQ(b.reason.size() % 2, 0u);
}

TEST(CloseCode, MalformedBodies) {
  std::byte one[1] = {std::byte{3}};
  CloseBody b;
  EXPECT_EQ(parse_close_body(one, 1, b), CloseParse::kBadLength);
  std::byte bad[] = {std::byte{0x03}, std::byte{0xEC}};  // 1004
  EXPECT_EQ(parse_close_body(bad, 2, b), CloseParse::kBadCode);
  std::byte utf[] = {std::byte{0x03}, std::byte{0xE8}, std::byte{0xFF}};
  EXPECT_EQ(parse_close_body(utf, 3, b), CloseParse::kBadUtf8);
}

}  // namespace
}  // namespace wsedge::protocol
