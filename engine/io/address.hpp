#pragma once
// Socket addresses from "HOST:PORT" / "[V6]:PORT" and the listening socket each core opens.
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace wsedge::io {

struct Address {
  sockaddr_storage storage{};
  socklen_t len = 0;

  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
  std::uint16_t port() const;
  void set_port(std::uint16_t port);
  std::string to_string() const;
};

// Numeric hosts, "localhost" and "*"/empty (all interfaces). Throws std::invalid_argument.
Address parse_address(std::string_view host_port);

// A bound, listening TCP socket with SO_REUSEPORT (so every core can own one on the same port)
// and TCP_NODELAY, which accepted sockets inherit. Throws std::system_error.
int open_listener(const Address& addr, int backlog);

// Whether some socket already listens on `addr` without sharing it with us: a probe bound
// without SO_REUSEPORT gets EADDRINUSE. Throws std::system_error if there is no socket to probe
// with.
bool address_in_use(const Address& addr);

// The address a socket is bound to (to learn the port chosen for ":0").
Address local_address(int fd);

void set_nodelay(int fd);

}  // namespace wsedge::io
