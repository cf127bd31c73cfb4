#include "proxy_header.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <string_view>

namespace wsedge::protocol {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::uint8_t kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                           0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::size_t kV2Fixed = 16;
constexpr std::uint8_t kV4Mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};

constexpr ProxyResult incomplete() {
  return {ProxyParse::kIncomplete, 0, false, 0, 0, nullptr, {}};
}
constexpr ProxyResult error(std::uint8_t version, const char* why) {
  return {ProxyParse::kError, version, false, 0, 0, why, {}};
}
constexpr ProxyResult local(std::uint8_t version, std::size_t consumed) {
  return {ProxyParse::kDone, version, true, 0, consumed, nullptr, {}};
}

// Whether the bytes so far agree with `expected` as far as both go.
bool agrees(std::span<const std::byte> in, const void* expected, std::size_t len) {
  return std::memcmp(in.data(), expected, std::min(in.size(), len)) == 0;
}

// A v1 port: decimal 0..65535 without a sign or leading zeros ("080" would read as 80 to one
// parser and fail in another; the specification's senders never write it).
bool v1_port(std::string_view s, std::uint16_t& out) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  std::uint32_t n = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return false;
    n = n * 10 + static_cast<std::uint32_t>(ch - '0');
  }
  if (n > 65535) return false;
  out = static_cast<std::uint16_t>(n);
  return true;
}

// A v1 address of the family TCP4 or TCP6 names, in inet_pton's forms only; into `ip` as
// 16 bytes (IPv4 v4-mapped).
bool v1_address(std::string_view s, bool v6, std::array<std::uint8_t, 16>& ip) {
  char text[INET6_ADDRSTRLEN];
  if (s.empty() || s.size() >= sizeof text) return false;
  std::memcpy(text, s.data(), s.size());
  text[s.size()] = '\0';
  if (v6) return inet_pton(AF_INET6, text, ip.data()) == 1;
  std::memcpy(ip.data(), kV4Mapped, sizeof kV4Mapped);
  return inet_pton(AF_INET, text, ip.data() + 12) == 1;
}

// The line between "PROXY " and CRLF.
ProxyResult v1_line(std::string_view line, std::size_t consumed) {
  // The receiver ignores whatever follows UNKNOWN (the specification allows addresses there).
  if (line == "UNKNOWN" || line.starts_with("UNKNOWN ")) return local(1, consumed);
  bool v6 = line.starts_with("TCP6 ");
  if (!v6 && !line.starts_with("TCP4 "))
    return error(1, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
  line.remove_prefix(5);
  // Exactly four fields, one space apart: a double space makes an empty field, refused below.
  std::string_view field[4];
  for (int i = 0; i < 4; ++i) {
    std::size_t sp = i < 3 ? line.find(' ') : std::string_view::npos;
    if (i < 3 && sp == std::string_view::npos) return error(1, "v1: fields missing");
    field[i] = line.substr(0, sp);
    line.remove_prefix(i < 3 ? sp + 1 : line.size());
  }
  ProxyResult r = {ProxyParse::kDone, 1, false, 0, consumed, nullptr, {}};
  std::array<std::uint8_t, 16> dst;
  std::uint16_t dst_port;
  if (!v1_address(field[0], v6, r.ip) || !v1_address(field[1], v6, dst))
    return error(1, "v1: bad address");
  if (!v1_port(field[2], r.port) || !v1_port(field[3], dst_port)) return error(1, "v1: bad port");
  return r;
}

ProxyResult parse_v1(std::span<const std::byte> in) {
  if (!agrees(in, kV1Prefix.data(), kV1Prefix.size())) return error(0, "no PROXY protocol header");
  // The CR may stand at most two bytes before the limit.
  const std::size_t cr_limit = kMaxProxyV1 - 2;
  const auto* s = reinterpret_cast<const char*>(in.data());
  for (std::size_t i = kV1Prefix.size(); i < std::min(in.size(), cr_limit + 1); ++i) {
    char ch = s[i];
    if (ch == '\r') {
      if (i + 1 == in.size()) return incomplete();
      if (s[i + 1] != '\n') return error(1, "v1: CR without LF");
      return v1_line({s + kV1Prefix.size(), i - kV1Prefix.size()}, i + 2);
    }
    // Fails at once on binary junk or a bare LF rather than waiting for 107 bytes.
    if (ch < 0x20 || ch > 0x7E) return error(1, "v1: invalid character");
  }
  if (in.size() > cr_limit) return error(1, "v1: header longer than 107 bytes");
  return incomplete();
}

std::uint16_t be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}

ProxyResult parse_v2(std::span<const std::byte> in) {
  if (!agrees(in, kV2Signature, sizeof kV2Signature)) return error(0, "no PROXY protocol header");
  const auto* b = reinterpret_cast<const std::uint8_t*>(in.data());
  // Each fixed byte is checked as soon as it is there, so junk fails at its first wrong byte.
  if (in.size() <= 12) return incomplete();
  if (b[12] >> 4 != 2) return error(2, "v2: version is not 2");
  const bool proxy = (b[12] & 0x0F) == 1;
  if (!proxy && (b[12] & 0x0F) != 0) return error(2, "v2: command is neither LOCAL nor PROXY");
  // Addresses by family and transport, for PROXY: AF_INET and AF_INET6 over TCP carry the
  // client's; UNSPEC (0x00) and AF_UNIX (0x31, 0x32) keep the connection's own. UDP would
  // not be relayed on a TCP connection; other values are reserved.
  std::size_t addr_len = 0;
  if (in.size() <= 13) return incomplete();
  if (proxy) {
    switch (b[13]) {
      case 0x00:
        break;
      case 0x11:
        addr_len = 12;
        break;
      case 0x21:
        addr_len = 36;
        break;
      case 0x31:
      case 0x32:
        addr_len = 216;
        break;
      default:
        return error(2, "v2: unsupported address family or transport");
    }
  }
  if (in.size() < kV2Fixed) return incomplete();
  const std::size_t total = kV2Fixed + be16(b + 14);
  if (total > kMaxProxyV2) return error(2, "v2: header longer than 4096 bytes");
  if (total < kV2Fixed + addr_len) return error(2, "v2: length shorter than the addresses");
  if (in.size() < total) return incomplete();
  // LOCAL: the proxy speaks for itself (a health check); what follows the fixed part is
  // ignored, as the specification says.
  if (!proxy) return local(2, total);
  // TLVs (type, 16-bit length, value) must tile what follows the addresses exactly.
  for (std::size_t pos = kV2Fixed + addr_len; pos < total;) {
    if (total - pos < 3 || total - pos - 3 < be16(b + pos + 1))
      return error(2, "v2: TLV overruns the header");
    pos += 3 + be16(b + pos + 1);
  }
  if (b[13] != 0x11 && b[13] != 0x21) return local(2, total);
  ProxyResult r = {ProxyParse::kDone, 2, false, 0, total, nullptr, {}};
  const std::uint8_t* a = b + kV2Fixed;
  if (b[13] == 0x11) {
    std::memcpy(r.ip.data(), kV4Mapped, sizeof kV4Mapped);
    std::memcpy(r.ip.data() + 12, a, 4);
    r.port = be16(a + 8);
  } else {
    std::memcpy(r.ip.data(), a, 16);
    r.port = be16(a + 32);
  }
  return r;
}

}  // namespace

ProxyResult parse_proxy_header(std::span<const std::byte> in) {
  if (in.empty()) return incomplete();
  // The two versions part at the first byte: 'P' of "PROXY " or CR of the v2 signature.
  switch (static_cast<char>(in[0])) {
    case 'P':
      return parse_v1(in);
    case '\r':
      return parse_v2(in);
    default:
      return error(0, "no PROXY protocol header");
  }
}

}  // namespace wsedge::protocol
