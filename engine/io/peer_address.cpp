#include "peer_address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdio>
#include <cstring>

namespace wsedge::io {
namespace {
constexpr std::uint8_t kV4Mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
}

PeerAddress PeerAddress::from(const sockaddr* sa) {
  PeerAddress p;
  if (sa->sa_family == AF_INET) {
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(sa);
    std::memcpy(p.ip.data(), kV4Mapped, sizeof kV4Mapped);
    std::memcpy(p.ip.data() + 12, &in4->sin_addr, 4);
    p.port = ntohs(in4->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    std::memcpy(p.ip.data(), &in6->sin6_addr, 16);
    p.port = ntohs(in6->sin6_port);
  }
  return p;
}

PeerAddress PeerAddress::of_socket(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return from(reinterpret_cast<const sockaddr*>(&ss));
}

bool PeerAddress::is_v4() const {
  return std::memcmp(ip.data(), kV4Mapped, sizeof kV4Mapped) == 0;
}

std::string PeerAddress::to_string(bool with_port) const {
  char host[INET6_ADDRSTRLEN] = {};
  char out[INET6_ADDRSTRLEN + 16];
  if (is_v4()) {
    inet_ntop(AF_INET, ip.data() + 12, host, sizeof host);
    if (!with_port) return host;
    std::snprintf(out, sizeof out, "%s:%u", host, port);
  } else {
    inet_ntop(AF_INET6, ip.data(), host, sizeof host);
    if (!with_port) return host;
    std::snprintf(out, sizeof out, "[%s]:%u", host, port);
  }
  return out;
}

}  // namespace wsedge::io
