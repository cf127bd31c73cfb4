#pragma once
// Per-core WebSocket counters: plain integers, only the owning core writes them.
#include <cstdint>

namespace wsedge::ws {

struct EndpointCounters {
  std::uint64_t handshakes = 0;          // upgrades answered 101 (server) or accepted (client)
  std::uint64_t handshake_rejected = 0;  // 4xx answers, refused 101s
  std::uint64_t handshake_timeouts = 0;
  std::uint64_t health_checks = 0;
  std::uint64_t messages_in = 0;
  std::uint64_t messages_out = 0;
  std::uint64_t pings_in = 0;
  std::uint64_t pings_sent = 0;
  std::uint64_t closes_in = 0;         // Close frames received with a valid code
  std::uint64_t protocol_errors = 0;   // closed with 1002
  std::uint64_t invalid_utf8 = 0;      // closed with 1007
  std::uint64_t too_big = 0;           // closed with 1009
  std::uint64_t backlog_exceeded = 0;  // closed with 1008: the peer stopped reading
  std::uint64_t ping_timeouts = 0;
  std::uint64_t close_timeouts = 0;
  std::uint64_t abnormal_closes = 0;  // TCP ended without a Close handshake
  std::uint64_t tls_handshakes = 0;
  std::uint64_t tls_resumed = 0;  // handshakes that resumed a session (ticket)
  std::uint64_t tls_errors = 0;   // failed handshakes, bad records, plain HTTP on TLS
};

}  // namespace wsedge::ws
