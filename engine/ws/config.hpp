#pragma once
#include <cstddef>
#include <cstdint>

namespace wsedge::ws {

struct EndpointConfig {
  std::uint64_t max_message = std::uint64_t{16} << 20;  // larger messages close with 1009
  std::size_t max_header_bytes = 8192;                  // larger upgrade requests get 431
  std::uint32_t handshake_timeout_ms = 10000;
  std::uint32_t ping_interval_ms =
      30000;  // idle time before a ping; twice that without a reply closes; 0 = off
  std::uint32_t close_timeout_ms = 5000;  // wait for the peer's Close after sending ours
  std::size_t max_outbound = std::size_t{64}
                             << 20;  // queued output that closes a non-reading peer (1008)
};

}  // namespace wsedge::ws
