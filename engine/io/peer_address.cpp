#include "peer_address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
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

std::size_t PeerAddress::format(char (&out)[kMaxText], bool with_port) const {
  char host[INET6_ADDRSTRLEN] = {};
  bool v4 = is_v4();
  inet_ntop(v4 ? AF_INET : AF_INET6, ip.data() + (v4 ? 12 : 0), host, sizeof host);
  int n = !with_port ? std::snprintf(out, sizeof out, "%s", host)
          : v4       ? std::snprintf(out, sizeof out, "%s:%u", host, port)
                     : std::snprintf(out, sizeof out, "[%s]:%u", host, port);
  return n < 0 ? 0 : std::min(static_cast<std::size_t>(n), sizeof out - 1);
}

std::string PeerAddress::to_string(bool with_port) const {
  char out[kMaxText];
  return std::string(out, format(out, with_port));
}

}  // namespace wsedge::io
