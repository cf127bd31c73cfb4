#pragma once
// A reactor sized for tests: a few hundred connections, not the server's 262,144 per core.
#include <cstdint>

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

}  // namespace wsedge::test
