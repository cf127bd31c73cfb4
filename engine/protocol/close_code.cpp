#include "close_code.hpp"

#include <algorithm>
#include <cstring>

#include "frame.hpp"
#include "utf8.hpp"

namespace wsedge::protocol {

CloseParse parse_close_body(const std::byte* p, std::size_t len, CloseBody& out) {
  out = {close_code::kNoStatus, {}};
  if (len == 0) return CloseParse::kOk;
  if (len == 1) return CloseParse::kBadLength;
  out.code =
      static_cast<std::uint16_t>((static_cast<unsigned>(p[0]) << 8) | static_cast<unsigned>(p[1]));
  if (!is_valid_wire_close_code(out.code)) return CloseParse::kBadCode;
  if (!Utf8Validator::valid(p + 2, len - 2)) return CloseParse::kBadUtf8;
  out.reason = {reinterpret_cast<const char*>(p + 2), len - 2};
  return CloseParse::kOk;
}

std::size_t write_close_body(std::byte* out, std::uint16_t code, std::string_view reason) {
  if (code == close_code::kNoStatus) return 0;
  out[0] = static_cast<std::byte>(code >> 8);
  out[1] = static_cast<std::byte>(code);
  std::size_t n = std::min(reason.size(), kMaxControlPayload - 2);
  // Never cut inside a UTF-8 sequence: back up to the start of the last character.
  while (n < reason.size() && n > 0 && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80) --n;
  if (n) std::memcpy(out + 2, reason.data(), n);
  return 2 + n;
}

}  // namespace wsedge::protocol
