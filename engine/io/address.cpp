#include "address.hpp"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace wsedge::io {

std::uint16_t Address::port() const {
  if (family() == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
}

void Address::set_port(std::uint16_t port) {
  if (family() == AF_INET6)
    reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port = htons(port);
  else
    reinterpret_cast<sockaddr_in*>(&storage)->sin_port = htons(port);
}

std::string Address::to_string() const {
  char host[INET6_ADDRSTRLEN] = {};
  char out[INET6_ADDRSTRLEN + 16];
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, host,
              sizeof host);
    std::snprintf(out, sizeof out, "[%s]:%u", host, port());
  } else {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, host,
              sizeof host);
    std::snprintf(out, sizeof out, "%s:%u", host, port());
  }
  return out;
}

Address parse_address(std::string_view s) {
  std::size_t colon = s.rfind(':');
  if (colon == std::string_view::npos)
    throw std::invalid_argument("expected HOST:PORT, got '" + std::string(s) + "'");
  std::string_view host = s.substr(0, colon);
  std::string_view port_s = s.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_s.data(), port_s.data() + port_s.size(), port);
  if (ec != std::errc() || end != port_s.data() + port_s.size() || port > 65535 || port_s.empty())
    throw std::invalid_argument("bad port in '" + std::string(s) + "'");
  Address a;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    std::string h(host.substr(1, host.size() - 2));
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    in6->sin6_family = AF_INET6;
    if (inet_pton(AF_INET6, h.c_str(), &in6->sin6_addr) != 1)
      throw std::invalid_argument("bad IPv6 address '" + h + "'");
    a.len = sizeof(sockaddr_in6);
  } else {
    std::string h(host);
    if (h.empty() || h == "*") h = "0.0.0.0";
    if (h == "localhost") h = "127.0.0.1";
    auto* in4 = reinterpret_cast<sockaddr_in*>(&a.storage);
    in4->sin_family = AF_INET;
    if (inet_pton(AF_INET, h.c_str(), &in4->sin_addr) != 1)
      throw std::invalid_argument("bad IPv4 address '" + h + "'");
    a.len = sizeof(sockaddr_in);
  }
  a.set_port(static_cast<std::uint16_t>(port));
  return a;
}

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int open_listener(const Address& addr, int backlog) {
  int fd = socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  set_nodelay(fd);
  if (bind(fd, addr.sa(), addr.len) < 0 || listen(fd, backlog) < 0) {
    int e = errno;
    close(fd);
    throw std::system_error(e, std::generic_category(), "listen on " + addr.to_string());
  }
  return fd;
}

bool address_in_use(const Address& addr) {
  int fd = socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  // SO_REUSEADDR as the listeners have it, so connections of an earlier run still in TIME_WAIT
  // do not count; a listening socket does. Without SO_REUSEPORT the bind cannot join one.
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  bool in_use = bind(fd, addr.sa(), addr.len) < 0 && errno == EADDRINUSE;
  close(fd);
  return in_use;
}

Address local_address(int fd) {
  Address a;
  a.len = sizeof a.storage;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a.storage), &a.len);
  return a;
}

}  // namespace wsedge::io
