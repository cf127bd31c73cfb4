#pragma once
// Per-core bridge counters (engine/counter.hpp): written by the owning core, named once for the
// exit log and the metrics endpoint alike.
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>

#include "engine/counter.hpp"

namespace wsedge::bridge {

// Bridge messages by type (bridge/protocol.hpp's Type, docs/BRIDGE-PROTOCOL.md): the known types
// and one slot for anything else, so a label set a backend cannot grow.
struct TypeCounters {
  static constexpr std::uint8_t kTypes[] = {0x01, 0x02, 0x10, 0x11, 0x12, 0x13, 0x14,
                                            0x20, 0x21, 0x81, 0x82, 0x83, 0x84, 0x85,
                                            0x86, 0x87, 0x88, 0x89, 0x8A};
  static constexpr std::string_view kNames[] = {
      "hello",          "beat",        "open",    "message",          "close",    "snapshot",
      "client_publish", "ack",         "error",   "welcome",          "send",     "close_command",
      "subscribe",      "unsubscribe", "publish", "snapshot_request", "received", "acl",
      "expires",        "other"};
  static_assert(std::size(kNames) == std::size(kTypes) + 1);
  static std::size_t slot(std::uint8_t type) {
    std::size_t i = 0;
    while (i < std::size(kTypes) && kTypes[i] != type) ++i;
    return i;
  }
  void count(std::uint8_t type) { ++by[slot(type)]; }
  Counter by[std::size(kNames)];
};

struct BridgeCounters {
  Counter events_up;        // OPEN, MESSAGE, CLOSE handed to ZeroMQ (resends included)
  Counter events_resent;    // ... of which resends after a backend came back
  Counter commands;         // commands from backends
  Counter sends;            // messages queued to clients by SEND
  Counter gone;             // commands naming a connection that has ended
  Counter bad_messages;     // backend messages refused: bad header, meta, type
  Counter backend_full;     // sends refused by a full backend (clients paused)
  Counter window_full;      // events over the unacknowledged window (clients paused)
  Counter backend_downs;    // links that went down
  Counter backend_ups;      // WELCOMEs
  Counter failovers;        // connections moved to another backend
  Counter outage_closes;    // clients closed with 1013 after the grace period
  Counter outage_refused;   // upgrades refused with 503: no backend up
  Counter slow_closes;      // clients closed with 1008 "slow consumer"
  Counter channel_drops;    // channel messages dropped for slow clients
  Counter publishes;        // publishes received
  Counter deliveries;       // publish frames queued to subscribers
  Counter publish_gaps;     // publishes lost between publisher and this core (seq jumps)
  Counter control_dropped;  // ACK/ERROR/BEAT not sent: backend full
  Counter subscriptions;    // gauge: (connection, channel) pairs
  Counter routes_down;      // gauge: routes with no backend up (--ready-needs-backends)
  // Not in kBridgeMetrics (labelled families, app/ops_sources.cpp exports them):
  TypeCounters sent;      // to backends (up)
  TypeCounters received;  // from backends (down), PUBLISH included
};

inline constexpr MetricInfo<BridgeCounters> kBridgeMetrics[] = {
    {"bridge_events_up_total", "events sent to backends", MetricType::kCounter,
     &BridgeCounters::events_up},
    {"bridge_events_resent_total", "events sent again after a backend came back",
     MetricType::kCounter, &BridgeCounters::events_resent},
    {"bridge_commands_total", "commands received from backends", MetricType::kCounter,
     &BridgeCounters::commands},
    {"bridge_sends_total", "messages queued to clients by backend SENDs", MetricType::kCounter,
     &BridgeCounters::sends},
    {"bridge_gone_total", "commands for connections that have ended", MetricType::kCounter,
     &BridgeCounters::gone},
    {"bridge_bad_messages_total", "backend messages refused as malformed or unknown",
     MetricType::kCounter, &BridgeCounters::bad_messages},
    {"bridge_backend_full_total", "sends refused by a full backend queue (clients paused)",
     MetricType::kCounter, &BridgeCounters::backend_full},
    {"bridge_window_full_total", "events past the unacknowledged window (clients paused)",
     MetricType::kCounter, &BridgeCounters::window_full},
    {"bridge_backend_downs_total", "backend links that went down", MetricType::kCounter,
     &BridgeCounters::backend_downs},
    {"bridge_backend_ups_total", "backend links that came up (WELCOME)", MetricType::kCounter,
     &BridgeCounters::backend_ups},
    {"bridge_failovers_total", "connections moved to another backend", MetricType::kCounter,
     &BridgeCounters::failovers},
    {"bridge_outage_closes_total", "clients closed with 1013 after a backend outage",
     MetricType::kCounter, &BridgeCounters::outage_closes},
    {"bridge_outage_refused_total", "upgrades refused with 503 while no backend was up",
     MetricType::kCounter, &BridgeCounters::outage_refused},
    {"bridge_slow_closes_total", "clients closed with 1008 as slow consumers", MetricType::kCounter,
     &BridgeCounters::slow_closes},
    {"bridge_channel_drops_total", "channel messages dropped for slow clients",
     MetricType::kCounter, &BridgeCounters::channel_drops},
    {"bridge_publishes_total", "channel publishes received", MetricType::kCounter,
     &BridgeCounters::publishes},
    {"bridge_deliveries_total", "publish frames queued to subscribers", MetricType::kCounter,
     &BridgeCounters::deliveries},
    {"bridge_publish_gaps_total", "publishes lost before reaching this core", MetricType::kCounter,
     &BridgeCounters::publish_gaps},
    {"bridge_control_dropped_total", "ACK, ERROR and BEAT messages not sent to a full backend",
     MetricType::kCounter, &BridgeCounters::control_dropped},
    {"bridge_subscriptions", "subscriptions of connections to channels", MetricType::kGauge,
     &BridgeCounters::subscriptions},
    {"bridge_routes_down", "routes with no backend up on this core", MetricType::kGauge,
     &BridgeCounters::routes_down},
};

}  // namespace wsedge::bridge
