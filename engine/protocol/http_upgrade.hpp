#pragma once
// The HTTP/1.1 side of the WebSocket opening handshake (RFC 6455 §4), over byte views: the
// server parses the client's GET and writes 101 or an error; the client writes the GET and
// checks the 101. No sockets and no copies: every field is a view into the caller's bytes.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace wsedge::protocol {

struct UpgradeRequest {
  std::string_view method;
  std::string_view target;  // request-target, e.g. "/chat?room=1"
  std::string_view host;
  std::string_view key;        // Sec-WebSocket-Key
  std::string_view origin;     // empty when absent
  std::string_view protocols;  // Sec-WebSocket-Protocol, raw comma-separated list
  std::string_view headers;    // all header lines, for header()

  // Value of the first header named `name` (case-insensitive); empty when absent.
  std::string_view header(std::string_view name) const;
};

enum class RequestParse : std::uint8_t {
  kIncomplete,  // no blank line yet and still under the size limit
  kUpgrade,     // a valid WebSocket upgrade: answer 101
  kHealth,      // plain GET /healthz: answer 200
  kReject,      // answer `status` with `reason` and close
};

struct RequestResult {
  RequestParse kind;
  std::uint16_t status;  // HTTP status for kReject
  const char* reason;    // short human-readable cause, also the response body
  std::size_t consumed;  // bytes of the request including the blank line
};

RequestResult parse_upgrade_request(std::string_view buf, std::size_t max_header_bytes,
                                    UpgradeRequest& out);

// True when the comma-separated `list` holds `token` (case-insensitive, OWS trimmed).
bool has_token(std::string_view list, std::string_view token);

using AcceptKey = std::array<char, 28>;
AcceptKey accept_key(std::string_view key);

// The response writers return bytes written into `out`, which must hold at least the
// kMax*Response bytes below (plus the variable fields' lengths where noted).
constexpr std::size_t kMaxResponseFixed = 256;
std::size_t write_switching_protocols(char* out, std::string_view key, std::string_view protocol);
std::size_t write_http_error(char* out, std::uint16_t status, std::string_view body);
std::size_t write_health(char* out);

// Client role.
using ClientKey = std::array<char, 24>;
ClientKey make_client_key();
std::size_t write_upgrade_request(char* out, std::size_t cap, std::string_view host,
                                  std::string_view target, std::string_view key,
                                  std::string_view protocols);
struct ResponseResult {
  RequestParse kind;  // kIncomplete, kUpgrade (valid 101) or kReject
  std::uint16_t status;
  const char* reason;
  std::size_t consumed;
  std::string_view protocol;  // the subprotocol the server chose, if any
};
ResponseResult parse_upgrade_response(std::string_view buf, std::size_t max_header_bytes,
                                      std::string_view key);

}  // namespace wsedge::protocol
