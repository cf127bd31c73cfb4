#pragma once
// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) that a load
// balancer sends before anything else on a connection it relays, naming the client it relays
// for. Pure, over byte views, like the upgrade parser: the caller hands it every byte received
// so far, from the first, and calls again with more while it answers kIncomplete. No sockets:
// the address comes back as 16 bytes (IPv4 as v4-mapped IPv6) and a port.
//
// Strict: a connection on a listener that expects the header and does not start with one (a
// TLS ClientHello, a GET) is refused at its first byte, not after a timeout; v1's addresses
// and ports are validated as a whole (inet_pton's forms, no leading zeros in ports); v2 must
// be version 2 with command LOCAL or PROXY, and its length must hold the family's addresses.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace wsedge::protocol {

// v1: the longest line the specification allows, CRLF included ("PROXY UNKNOWN" with two full
// IPv6 addresses and ports; a TCP6 line takes 104).
inline constexpr std::size_t kMaxProxyV1 = 107;
// v2: the 16 fixed bytes and what the length field announces. The addresses take at most 216
// (AF_UNIX); the rest are TLVs (ALPN, authority, SSL details, a CRC), which we skip. HAProxy's
// own receivers cap the whole header near the size of one buffer; 4 KiB leaves room for every
// TLV a proxy adds, while a length of up to 64 KiB announced by a peer would have each
// connection hold that much before it says anything else.
inline constexpr std::size_t kMaxProxyV2 = 4096;

enum class ProxyParse : std::uint8_t {
  kIncomplete,  // a prefix of a valid header; nothing consumed
  kDone,        // a whole header: `consumed` bytes, the rest is the relayed stream
  kError,       // not a header, or a malformed one: close the connection
};

struct ProxyResult {
  ProxyParse kind;
  std::uint8_t version;  // 1 or 2 once known (kDone, and kError past the signature); else 0
  bool local;            // kDone: no client address; the connection's own stands (below)
  std::uint16_t port;    // kDone, !local: the client's source port (host order)
  std::size_t consumed;  // kDone: the header's length
  const char* error;     // kError: what was wrong, for logs
  std::array<std::uint8_t, 16> ip;  // kDone, !local: the client's source address
};

// `local` is set for a v2 LOCAL command (the proxy's own health check), a v2 PROXY command for
// AF_UNSPEC or AF_UNIX, and v1 "UNKNOWN": the specification has the receiver keep the
// connection's real address then.
ProxyResult parse_proxy_header(std::span<const std::byte> in);

}  // namespace wsedge::protocol
