#pragma once
// The HTTP/1.1 side of the WebSocket opening handshake (RFC 6455 §4), over byte views: the
// server parses the client's GET and writes 101 or an error; the client writes the GET and
// checks the 101. No sockets and no copies: every field is a view into the caller's bytes.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "extensions.hpp"

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
  // Value of the next header named `name` from offset `from` in `headers` (0, or where the
  // previous call left it), advancing `from` past its line. False, with `value` untouched, when
  // no such header is left.
  bool next_header(std::string_view name, std::size_t& from, std::string_view& value) const;
  // Calls fn(value) for every header named `name`, in order: several lines of a list header
  // (Sec-WebSocket-Extensions, Sec-WebSocket-Protocol) form one list (RFC 7230 §3.2.2).
  template <class Fn>
  void for_each_header(std::string_view name, Fn&& fn) const {
    std::size_t from = 0;
    std::string_view value;
    while (next_header(name, from, value)) fn(value);
  }
  // Calls fn(const Extension&) for every extension offered, over all Sec-WebSocket-Extensions
  // lines in order; parse_upgrade_request has refused the request if any line was malformed.
  template <class Fn>
  void for_each_extension(Fn&& fn) const {
    for_each_header("sec-websocket-extensions",
                    [&](std::string_view list) { protocol::for_each_extension(list, fn); });
  }
};

enum class RequestParse : std::uint8_t {
  kIncomplete,  // no blank line yet and still under the size limit
  kUpgrade,     // a valid WebSocket upgrade: answer 101
  // A plain HTTP GET (no Upgrade, no key, no "Connection: upgrade"), valid otherwise: the
  // caller answers out.target (/healthz, a static page) or refuses it (426).
  kPlainGet,
  kReject,  // answer `status` with `reason` and close
};

// The path of a request-target: what precedes its query.
inline std::string_view target_path(std::string_view target) {
  return target.substr(0, target.find('?'));
}

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

// The response writers write into out[0, cap) and return the bytes written, or 0 when the
// response does not fit (what they wrote then must not be sent: it is cut short). A response
// fits when cap >= kMaxResponseFixed + the lengths of the variable arguments (an error body
// counts for at most 128 bytes). `extensions` is the Sec-WebSocket-Extensions value to answer,
// empty for none. `extra_headers` is zero or more complete "Name: value\r\n" lines (e.g.
// WWW-Authenticate, Retry-After), copied as they are: the caller vouches that they are well
// formed, since a stray CRLF in them would let one response forge another.
constexpr std::size_t kMaxResponseFixed = 256;
std::size_t write_switching_protocols(char* out, std::size_t cap, std::string_view key,
                                      std::string_view protocol, std::string_view extensions = {},
                                      std::string_view extra_headers = {});
std::size_t write_http_error(char* out, std::size_t cap, std::uint16_t status,
                             std::string_view body, std::string_view extra_headers = {});
std::size_t write_health(char* out, std::size_t cap);
// The head of a 200 answer to a plain GET of a static page whose `body_len` bytes follow it:
// Content-Type (the caller's own, vouched for like extra_headers), Content-Length, no-cache,
// nosniff, Connection: close. Fits when cap >= kMaxResponseFixed + content_type.size().
std::size_t write_page_head(char* out, std::size_t cap, std::string_view content_type,
                            std::size_t body_len);

// Client role. write_upgrade_request throws std::length_error when the request does not fit in
// `cap`: its fields come from the application's own configuration, not from a peer.
using ClientKey = std::array<char, 24>;
ClientKey make_client_key();
std::size_t write_upgrade_request(char* out, std::size_t cap, std::string_view host,
                                  std::string_view target, std::string_view key,
                                  std::string_view protocols, std::string_view extensions = {});
struct ResponseResult {
  RequestParse kind;  // kIncomplete, kUpgrade (valid 101) or kReject
  std::uint16_t status;
  const char* reason;
  std::size_t consumed;
  std::string_view protocol;    // the subprotocol the server chose, if any
  std::string_view extensions;  // the server's Sec-WebSocket-Extensions (validated), if any
};
ResponseResult parse_upgrade_response(std::string_view buf, std::size_t max_header_bytes,
                                      std::string_view key);

}  // namespace wsedge::protocol
