#pragma once
// Close status codes (RFC 6455 §7.4) and the Close frame body (§5.5.1).
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace wsedge::protocol {

namespace close_code {
constexpr std::uint16_t kNormal = 1000;
constexpr std::uint16_t kGoingAway = 1001;
constexpr std::uint16_t kProtocolError = 1002;
constexpr std::uint16_t kUnsupportedData = 1003;
constexpr std::uint16_t kNoStatus = 1005;  // never on the wire: an empty Close body
constexpr std::uint16_t kAbnormal = 1006;  // never on the wire: no Close frame at all
constexpr std::uint16_t kInvalidPayload = 1007;
constexpr std::uint16_t kPolicyViolation = 1008;
constexpr std::uint16_t kMessageTooBig = 1009;
constexpr std::uint16_t kMandatoryExtension = 1010;
constexpr std::uint16_t kInternalError = 1011;
constexpr std::uint16_t kServiceRestart = 1012;
constexpr std::uint16_t kTryAgainLater = 1013;  // the bridge: no backend came back
constexpr std::uint16_t kBadGateway = 1014;
}  // namespace close_code

// Codes a peer may send: 1000-1003, 1007-1011, and 3000-4999 for libraries and applications.
constexpr bool is_valid_wire_close_code(std::uint16_t c) {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
}
// Codes this server may send: those, and 1012-1014 (service restart, try again later, bad
// gateway), registered with IANA after RFC 6455. Received, those three are still refused: the
// Autobahn suite (cases 7.9.x) counts them invalid, and no client sends them.
constexpr bool may_send_close_code(std::uint16_t c) {
  return is_valid_wire_close_code(c) || (c >= 1012 && c <= 1014);
}

struct CloseBody {
  std::uint16_t code;  // kNoStatus when the body was empty
  std::string_view reason;
};

enum class CloseParse : std::uint8_t { kOk, kBadLength, kBadCode, kBadUtf8 };
CloseParse parse_close_body(const std::byte* p, std::size_t len, CloseBody& out);

// Writes code and reason (cut to fit a control frame). Returns bytes written; 0 for kNoStatus.
std::size_t write_close_body(std::byte* out, std::uint16_t code, std::string_view reason);

}  // namespace wsedge::protocol
