#pragma once
// The address at the other end of a connection, small enough to keep for every connection
// (logs, per-IP limits, what backends are told): 18 bytes, IPv4 kept as v4-mapped IPv6 so one
// layout and one comparison serve both families.
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace wsedge::io {

struct PeerAddress {
  std::array<std::uint8_t, 16> ip{};  // network order; ::ffff:a.b.c.d for IPv4
  std::uint16_t port = 0;             // host order; 0 when unknown

  // From a socket address of either family; unknown families give the zero address.
  static PeerAddress from(const sockaddr* sa);
  // The peer of a connected socket (getpeername), or the zero address if it has none.
  static PeerAddress of_socket(int fd);
  bool is_v4() const;
  // "192.0.2.1:443" or "[2001:db8::1]:443"; without the port when `with_port` is false.
  std::string to_string(bool with_port = true) const;
  // The same into `out` without allocating (a log line per connection); returns its length.
  static constexpr std::size_t kMaxText = 64;  // "[" INET6_ADDRSTRLEN "]:65535"
  std::size_t format(char (&out)[kMaxText], bool with_port = true) const;
  bool operator==(const PeerAddress&) const = default;
};

}  // namespace wsedge::io
