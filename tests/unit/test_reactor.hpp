#pragma once
// A reactor sized for tests: a few hundred connections, not the server's 262,144 per core.
#include <cstdint>
#include <functional>

#include "engine/io/reactor.hpp"

namespace wsedge::test {

inline io::ReactorConfig small_reactor(unsigned buf_count = 64, unsigned buf_size = 16384,
                                       std::uint32_t max_connections = 256) {
  io::ReactorConfig c;
  c.ring_entries = 256;
  c.buf_count = buf_count;
  c.buf_size = buf_size;
  c.max_connections = max_connections;
  return c;
}

// A reactor handler for tests without connections (timers, posts, fd watches, completions);
// on_stop() runs `stop`.
struct NoSockets {
  std::function<void()> stop = [] {};
  void on_accept(io::SocketId) {}
  void on_connect(io::SocketId, int) {}
  void on_data(io::SocketId, std::byte*, std::size_t) {}
  void on_peer_closed(io::SocketId, int) {}
  void on_drain(io::SocketId) {}
  void on_timer(io::SocketId) {}
  void on_stop() { stop(); }
  void on_reload() {}
  void on_flush() {}
};

}  // namespace wsedge::test
