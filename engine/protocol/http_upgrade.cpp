#include "http_upgrade.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "extensions.hpp"

namespace wsedge::protocol {
namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A Sec-WebSocket-Key must be the base64 of exactly 16 bytes (§4.1): 22 symbols and "==".
bool valid_key(std::string_view k) {
  if (k.size() != 24 || k[22] != '=' || k[23] != '=') return false;
  for (std::size_t i = 0; i < 22; ++i) {
    char c = k[i];
    bool b64 = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '+' || c == '/';
    if (!b64) return false;
  }
  // The last symbol carries only 2 significant bits of the 16th byte.
  return std::strchr("AQgw", k[21]) != nullptr;
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// RFC 9112 §3.2.1 origin-form: "/" path [ "?" query ], path and query made of RFC 3986 pchar,
// "/" and "?". Asterisk- and absolute-form, control bytes, '#', spaces and non-ASCII are refused:
// the target reaches the application, backends and logs, which must not see such bytes.
bool valid_origin_form(std::string_view t) {
  if (t.empty() || t[0] != '/') return false;
  for (std::size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (c == '%') {
      // A '%' not followed by two hex digits decodes differently in every decoder behind us.
      if (t.size() - i < 3 || !is_hex(t[i + 1]) || !is_hex(t[i + 2])) return false;
      i += 2;
      continue;
    }
    bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    // c == '\0' first: strchr would match the terminator of its own string.
    if (!unreserved && (c == '\0' || std::strchr("!$&'()*+,;=:@/?", c) == nullptr)) return false;
  }
  return true;
}

struct HeaderBlock {
  std::string_view start_line;
  std::string_view headers;  // lines after the start line, each ending in CRLF
  std::size_t consumed;
};

enum class Split : std::uint8_t { kOk, kIncomplete, kTooLarge };

Split split_head(std::string_view buf, std::size_t max, HeaderBlock& out) {
  std::size_t end = buf.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    return buf.size() >= max ? Split::kTooLarge : Split::kIncomplete;
  }
  if (end + 4 > max) return Split::kTooLarge;
  std::size_t line_end = buf.find("\r\n");
  out.start_line = buf.substr(0, line_end);
  out.headers = buf.substr(line_end + 2, end + 2 - (line_end + 2));
  out.consumed = end + 4;
  return Split::kOk;
}

enum class Line : std::uint8_t { kOk, kEnd, kMalformed };

// Splits the first header line off `headers` (lines each ending in CRLF) at its colon, checking
// nothing more: what lookups use, in headers parse_upgrade_request has checked already (each
// lookup checking every byte again walked a request with a token eight more times per upgrade).
// False at the end, or on a line without a colon.
bool split_line(std::string_view& headers, std::string_view& name, std::string_view& value) {
  if (headers.empty()) return false;
  std::size_t eol = headers.find("\r\n");
  std::string_view line = headers.substr(0, eol);
  headers.remove_prefix(std::min(headers.size(), line.size() + 2));
  std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return false;
  name = line.substr(0, colon);
  value = trim(line.substr(colon + 1));
  return true;
}

// split_line, and the checks a header line must pass.
Line next_line(std::string_view& headers, std::string_view& name, std::string_view& value) {
  if (headers.empty()) return Line::kEnd;
  if (!split_line(headers, name, value) || name.empty()) return Line::kMalformed;
  for (char c : name) {
    if (!is_tchar(c)) return Line::kMalformed;  // also obsolete line folding and stray spaces
  }
  // Field values are visible characters, spaces and tabs (RFC 9110 §5.5): a control byte (NUL,
  // CR, LF, ESC, DEL...) would otherwise reach the application, its logs and its backends.
  // (`value` is trimmed of spaces and tabs only: a control byte at either end is still in it.)
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7F) return Line::kMalformed;
  }
  return Line::kOk;
}

// Calls fn(name, value) per header line; false on a malformed line.
template <class Fn>
bool for_each_header(std::string_view headers, Fn&& fn) {
  std::string_view name, value;
  Line st;
  while ((st = next_line(headers, name, value)) == Line::kOk) fn(name, value);
  return st == Line::kEnd;
}

}  // namespace

bool UpgradeRequest::next_header(std::string_view name, std::size_t& from,
                                 std::string_view& value) const {
  std::string_view rest = headers.substr(std::min(from, headers.size()));
  std::string_view n, v;
  while (split_line(rest, n, v)) {
    if (iequals(n, name)) {
      from = headers.size() - rest.size();
      value = v;
      return true;
    }
  }
  from = headers.size();
  return false;
}

std::string_view UpgradeRequest::header(std::string_view name) const {
  std::size_t from = 0;
  std::string_view found;
  next_header(name, from, found);
  return found;
}

bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

RequestResult parse_upgrade_request(std::string_view buf, std::size_t max_header_bytes,
                                    UpgradeRequest& out) {
  HeaderBlock head;
  switch (split_head(buf, max_header_bytes, head)) {
    case Split::kIncomplete:
      return {RequestParse::kIncomplete, 0, nullptr, 0};
    case Split::kTooLarge:
      return {RequestParse::kReject, 431, "request header too large", buf.size()};
    case Split::kOk:
      break;
  }
  auto reject = [&](std::uint16_t status, const char* why) {
    return RequestResult{RequestParse::kReject, status, why, head.consumed};
  };
  std::string_view line = head.start_line;
  std::size_t sp1 = line.find(' ');
  std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return reject(400, "malformed request line");
  out = {};
  out.method = line.substr(0, sp1);
  out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1") return reject(400, "HTTP/1.1 required");
  if (out.method != "GET") return reject(400, "method must be GET");
  if (!valid_origin_form(out.target)) return reject(400, "request target must be origin-form");

  out.headers = head.headers;
  std::string_view upgrade, connection, version13;
  int hosts = 0, keys = 0;
  bool body = false, extensions_ok = true;
  bool ok = for_each_header(head.headers, [&](std::string_view n, std::string_view v) {
    if (iequals(n, "host"))
      out.host = v, ++hosts;
    else if (iequals(n, "upgrade"))
      upgrade = v;
    else if (iequals(n, "connection"))
      connection = v;
    else if (iequals(n, "sec-websocket-key"))
      out.key = v, ++keys;
    else if (iequals(n, "sec-websocket-version"))
      version13 = v;
    else if (iequals(n, "origin"))
      out.origin = v;
    else if (iequals(n, "sec-websocket-protocol")) {
      // Several header lines are one comma-separated list; keep the first, which is the usual
      // form, unless it is empty.
      if (out.protocols.empty()) out.protocols = v;
    } else if (iequals(n, "sec-websocket-extensions"))
      extensions_ok = extensions_ok && valid_extensions(v);
    else if (iequals(n, "content-length") || iequals(n, "transfer-encoding"))
      body = true;
  });
  if (!ok) return reject(400, "malformed header line");
  // A GET carries no body. A proxy in front that believes one follows would forward our
  // WebSocket bytes as that body, or the body as frames: request smuggling.
  if (body) return reject(400, "a GET request carries no body");
  if (!extensions_ok) return reject(400, "malformed Sec-WebSocket-Extensions");
  if (hosts != 1 || out.host.empty()) return reject(400, "exactly one Host header required");
  // A browser's plain GET says "Connection: keep-alive": only an upgrade's own headers make a
  // request an upgrade attempt (then refused below if incomplete).
  if (upgrade.empty() && out.key.empty() && !has_token(connection, "upgrade"))
    return {RequestParse::kPlainGet, 200, nullptr, head.consumed};
  if (!has_token(upgrade, "websocket")) return reject(426, "Upgrade: websocket required");
  if (!has_token(connection, "upgrade")) return reject(400, "Connection: Upgrade required");
  if (version13 != "13") return reject(426, "Sec-WebSocket-Version 13 required");
  if (keys != 1 || !valid_key(out.key)) return reject(400, "invalid Sec-WebSocket-Key");
  return {RequestParse::kUpgrade, 101, nullptr, head.consumed};
}

AcceptKey accept_key(std::string_view key) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx, key.data(), key.size()) == 1 &&
            EVP_DigestUpdate(ctx, kGuid.data(), kGuid.size()) == 1 &&
            EVP_DigestFinal_ex(ctx, digest, &dlen) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok || dlen != 20) throw std::runtime_error("SHA-1 unavailable in OpenSSL");
  AcceptKey out;
  unsigned char b64[29];
  EVP_EncodeBlock(b64, digest, 20);
  std::memcpy(out.data(), b64, out.size());
  return out;
}

namespace {

// Appends to out[0, cap); once a piece does not fit, nothing more is written and size() is 0,
// so a caller can never send a truncated response.
class Writer {
 public:
  Writer(char* out, std::size_t cap) : out_(out), cap_(cap) {}
  Writer& operator<<(std::string_view s) {
    if (s.empty()) return *this;  // an empty view's data() may be null, which memcpy must not get
    if (fits_ && cap_ - len_ >= s.size()) {
      std::memcpy(out_ + len_, s.data(), s.size());
      len_ += s.size();
    } else {
      fits_ = false;
    }
    return *this;
  }
  Writer& operator<<(std::size_t n) {
    char digits[20];
    auto r = std::to_chars(digits, digits + sizeof digits, n);
    return *this << std::string_view(digits, static_cast<std::size_t>(r.ptr - digits));
  }
  std::size_t size() const { return fits_ ? len_ : 0; }

 private:
  char* out_;
  std::size_t cap_;
  std::size_t len_ = 0;
  bool fits_ = true;
};

std::string_view status_text(std::uint16_t status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 426:
      return "Upgrade Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Error";
  }
}

}  // namespace

std::size_t write_switching_protocols(char* out, std::size_t cap, std::string_view key,
                                      std::string_view protocol, std::string_view extensions,
                                      std::string_view extra_headers) {
  AcceptKey a = accept_key(key);
  Writer w(out, cap);
  w << "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Accept: "
    << std::string_view(a.data(), a.size()) << "\r\n";
  if (!protocol.empty()) w << "Sec-WebSocket-Protocol: " << protocol << "\r\n";
  if (!extensions.empty()) w << "Sec-WebSocket-Extensions: " << extensions << "\r\n";
  w << extra_headers << "\r\n";
  return w.size();
}

std::size_t write_http_error(char* out, std::size_t cap, std::uint16_t status,
                             std::string_view body, std::string_view extra_headers) {
  // 426 must say what to upgrade to (RFC 7231 §6.5.15) and which WebSocket version we speak.
  std::string_view upgrade =
      status == 426 ? "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" : "";
  body = body.substr(0, 128);
  Writer w(out, cap);
  w << "HTTP/1.1 " << std::size_t{status} << " " << status_text(status)
    << "\r\nContent-Type: text/plain\r\nContent-Length: " << body.size() + 1
    << "\r\nConnection: close\r\n"
    << upgrade << extra_headers << "\r\n"
    << body << "\n";
  return w.size();
}

std::size_t write_health(char* out, std::size_t cap) {
  return write_http_error(out, cap, 200, "ok");
}

std::size_t write_page_head(char* out, std::size_t cap, std::string_view content_type,
                            std::size_t body_len) {
  Writer w(out, cap);
  // no-cache: a demo page changes with the server it comes from. nosniff: the type given is
  // the type meant, never a guess from the bytes.
  w << "HTTP/1.1 200 OK\r\nContent-Type: " << content_type << "\r\nContent-Length: " << body_len
    << "\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nConnection: close"
       "\r\n\r\n";
  return w.size();
}

ClientKey make_client_key() {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) throw std::runtime_error("RAND_bytes failed");
  unsigned char b64[25];
  EVP_EncodeBlock(b64, raw, 16);
  ClientKey k;
  std::memcpy(k.data(), b64, k.size());
  return k;
}

std::size_t write_upgrade_request(char* out, std::size_t cap, std::string_view host,
                                  std::string_view target, std::string_view key,
                                  std::string_view protocols, std::string_view extensions) {
  // An optional header line's pieces: nothing when its value is empty.
  auto line = [](const char* piece, std::string_view v) { return v.empty() ? "" : piece; };
  int n = std::snprintf(
      out, cap,
      "GET %.*s HTTP/1.1\r\nHost: %.*s\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: %.*s\r\n"
      "Sec-WebSocket-Version: 13\r\n%s%.*s%s%s%.*s%s\r\n",
      static_cast<int>(target.size()), target.data(), static_cast<int>(host.size()), host.data(),
      static_cast<int>(key.size()), key.data(), line("Sec-WebSocket-Protocol: ", protocols),
      static_cast<int>(protocols.size()), protocols.data(), line("\r\n", protocols),
      line("Sec-WebSocket-Extensions: ", extensions), static_cast<int>(extensions.size()),
      extensions.data(), line("\r\n", extensions));
  if (n < 0 || static_cast<std::size_t>(n) >= cap)
    throw std::length_error("upgrade request too long");
  return static_cast<std::size_t>(n);
}

ResponseResult parse_upgrade_response(std::string_view buf, std::size_t max_header_bytes,
                                      std::string_view key) {
  HeaderBlock head;
  switch (split_head(buf, max_header_bytes, head)) {
    case Split::kIncomplete:
      return {RequestParse::kIncomplete, 0, nullptr, 0, {}, {}};
    case Split::kTooLarge:
      return {RequestParse::kReject, 0, "response header too large", buf.size(), {}, {}};
    case Split::kOk:
      break;
  }
  auto reject = [&](std::uint16_t status, const char* why) {
    return ResponseResult{RequestParse::kReject, status, why, head.consumed, {}, {}};
  };
  std::string_view line = head.start_line;
  if (line.size() < 12 || line.substr(0, 9) != "HTTP/1.1 ")
    return reject(0, "not an HTTP/1.1 response");
  std::uint16_t status = 0;
  for (char c : line.substr(9, 3)) {
    if (c < '0' || c > '9') return reject(0, "malformed status line");
    status = static_cast<std::uint16_t>(status * 10 + (c - '0'));
  }
  if (status != 101) return reject(status, "server refused the upgrade");
  std::string_view upgrade, connection, accept, protocol, extensions;
  int extension_lines = 0;
  bool ok = for_each_header(head.headers, [&](std::string_view n, std::string_view v) {
    if (iequals(n, "upgrade"))
      upgrade = v;
    else if (iequals(n, "connection"))
      connection = v;
    else if (iequals(n, "sec-websocket-accept"))
      accept = v;
    else if (iequals(n, "sec-websocket-protocol"))
      protocol = v;
    else if (iequals(n, "sec-websocket-extensions"))
      extensions = v, ++extension_lines;
  });
  if (!ok) return reject(status, "malformed header line");
  // One view can hold one line: with a second, the caller would miss extensions in force.
  if (extension_lines > 1 || !valid_extensions(extensions))
    return reject(status, "malformed Sec-WebSocket-Extensions");
  if (!has_token(upgrade, "websocket") || !has_token(connection, "upgrade"))
    return reject(status, "101 without Upgrade/Connection");
  AcceptKey want = accept_key(key);
  if (accept != std::string_view(want.data(), want.size()))
    return reject(status, "wrong Sec-WebSocket-Accept");
  return {RequestParse::kUpgrade, 101, nullptr, head.consumed, protocol, extensions};
}

}  // namespace wsedge::protocol
