#pragma once
// What an operator configures about the bridge (flags in app/flags.cpp, documented in
// docs/BRIDGE-PROTOCOL.md §7-§10).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/ws/config.hpp"

namespace wsedge::bridge {

// When every backend of a route is down (§8).
enum class Outage : std::uint8_t {
  kHold,    // keep clients, reading paused, for the grace period; then 1013, spread out
  kRefuse,  // the same for connected clients, and new upgrades get 503 + Retry-After
};

// A client whose output budget is spent (§7).
enum class SlowPolicy : std::uint8_t {
  kClose,  // close it with 1008 "slow consumer"
  kDrop,   // drop channel messages for it and tell it how many once it has drained
};

struct Route {
  std::string path;                    // request path prefix; "/" matches all
  std::vector<std::string> endpoints;  // backend ROUTER endpoints
  Outage outage = Outage::kHold;
  SlowPolicy slow = SlowPolicy::kClose;
  // Subprotocols the route's backends speak, preferred first: the first of them the client
  // offers is answered in the 101 and told to the backend in OPEN (`protocol`).
  std::vector<std::string> protocols;
  // Its clients' `wsedge:` text messages are commands to the edge (docs/AUTH.md §6).
  bool control = false;
  // permessage-deflate for its clients; kDefault: --deflate's (docs/DEFLATE.md §1).
  ws::DeflateMode deflate = ws::DeflateMode::kDefault;

  bool operator==(const Route&) const = default;  // a reload tells a changed route (a restart)
};

struct CurveKeys {
  std::string public_key;  // Z85, 40 characters: this edge's key pair
  std::string secret_key;
  std::string server_key;  // the backends' public key
  bool enabled() const { return !secret_key.empty(); }
};

// What a ZeroMQ message may carry beyond its payload (header, meta of at most 64 entries).
constexpr std::uint64_t kMetaAllowance = 64 << 10;

struct Options {
  std::vector<Route> routes;              // empty: the embedded backend serves "/"
  std::vector<std::string> publish;       // PUB/XPUB endpoints every core's SUB connects to
  std::string node_name;                  // routing ids are "<node_name>/<core>"
  std::uint32_t node_id = 0;              // in every connection id
  std::uint32_t epoch = 0;                // boot epoch: seconds since 1970 at start
  int hwm = 10000;                        // ZMQ_SNDHWM/RCVHWM, messages
  std::uint32_t beat_ms = 5000;           // BEAT interval
  std::uint32_t heartbeat_ms = 5000;      // ZMTP heartbeats; the timeout is three of them
  std::uint32_t grace_ms = 30000;         // a route without backends holds its clients this long
  std::uint32_t close_spread_ms = 10000;  // ... then closes them over this long
  std::size_t output_budget = std::size_t{1} << 20;  // bytes queued to one client
  std::uint64_t max_message = std::uint64_t{16}
                              << 20;  // the largest client message (--max-message)
  std::uint32_t max_channels_per_conn = 1024;
  std::uint32_t window_events = 4096;  // events kept per backend until it counts them
  std::size_t window_bytes = std::size_t{8} << 20;
  std::vector<std::string> forward_headers = {"origin", "user-agent", "accept-language",
                                              "x-forwarded-for"};
  CurveKeys curve;
};

}  // namespace wsedge::bridge
