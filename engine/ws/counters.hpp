#pragma once
// Per-core WebSocket counters: written by the owning core only, readable from any thread
// (engine/counter.hpp), described once in kEndpointMetrics for logs and metrics alike.
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>

#include "engine/counter.hpp"

namespace wsedge::ws {

// Closes of connections the application saw open, by close code and by who sent the first
// Close (or dropped the connection). A small fixed set of codes: a label per code a peer may
// send would let one client grow a scrape without bound.
struct CloseCounters {
  enum Side : std::uint8_t { kPeer, kServer, kSides };
  static constexpr std::size_t kSlots = 18;  // 1000..1015, then 4000-4999, then anything else
  static std::size_t slot(std::uint16_t code) {
    if (code >= 1000 && code <= 1015) return code - 1000u;
    return code >= 4000 && code <= 4999 ? 16 : 17;
  }
  static std::string_view label(std::size_t slot) {
    static constexpr std::string_view kLabels[kSlots] = {
        "1000", "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008",
        "1009", "1010", "1011", "1012", "1013", "1014", "1015", "4xxx", "other"};
    return kLabels[slot];
  }
  Counter by[kSides][kSlots];
};

// Accept to 101, per core, in microseconds: upper bounds of the buckets.
inline constexpr std::uint64_t kHandshakeBoundsUs[] = {250,    500,     1000,    2500,    5000,
                                                       10000,  25000,   50000,   100000,  250000,
                                                       500000, 1000000, 2500000, 5000000, 10000000};
using HandshakeHistogram = FixedHistogram<kHandshakeBoundsUs>;

struct EndpointCounters {
  Counter handshakes;          // upgrades answered 101 (server) or accepted (client)
  Counter handshake_rejected;  // 4xx/5xx answers, refused 101s
  Counter handshake_timeouts;
  Counter upgrades_pending;   // on_upgrade deferred its decision
  Counter upgrade_timeouts;   // ... and did not decide in time (503)
  Counter upgrade_abandoned;  // ... and the client left before the decision
  Counter health_checks;
  Counter pages_served;  // plain GETs answered with a static page
  Counter messages_in;
  Counter messages_out;
  Counter payload_bytes_in;   // message payloads, unmasked (the reactor counts wire bytes)
  Counter payload_bytes_out;  // message payloads sent or queued (control frames not included)
  Counter pings_in;
  Counter pings_sent;
  Counter closes_in;         // Close frames received with a valid code
  Counter protocol_errors;   // closed with 1002
  Counter invalid_utf8;      // closed with 1007
  Counter too_big;           // closed with 1009: message over --max-message or too many fragments
  Counter assembly_refused;  // closed with 1009: the core's message-assembly budget was spent
  Counter backlog_exceeded;  // closed with 1008: the peer stopped reading
  Counter ping_timeouts;     // closed with 1011
  Counter close_timeouts;
  Counter abnormal_closes;  // TCP ended without a Close handshake
  Counter tls_handshakes;
  Counter tls_resumed;          // handshakes that resumed a session (ticket)
  Counter tls_own_records;      // TLS 1.3 connections handed to our record layer
  Counter tls_errors;           // failed handshakes, bad records, plain HTTP on TLS
  Counter first_byte_timeouts;  // dropped: sent nothing after accept
  Counter slow_recv_closes;     // 408 or 1008: a request or frame arrived below min_recv_rate
  Counter ip_conn_refused;      // 503: too many connections from the address
  Counter ip_rate_refused;      // 429: the address's handshake rate
  Counter msg_rate_closes;      // 1008: message rate exceeded
  Counter byte_rate_closes;     // 1008: byte rate exceeded
  Counter origin_refused;       // 403: Origin not allowed
  Counter proxy_headers;        // PROXY protocol headers accepted (LOCAL and UNKNOWN included)
  Counter proxy_header_errors;  // closed: a malformed PROXY header, or none where one is due
  // permessage-deflate (docs/DEFLATE.md §7)
  Counter deflate_negotiated;       // connections that negotiated it
  Counter deflate_context_refused;  // directions without context takeover for want of budget
  Counter messages_deflated;        // messages sent compressed
  Counter deflate_in_bytes;         // ... their payload before compression
  Counter deflate_out_bytes;        // ... and after
  Counter messages_inflated;        // compressed messages received
  Counter inflate_in_bytes;         // ... their payload as received
  Counter inflate_out_bytes;        // ... and inflated
  Counter inflate_errors;           // closed with 1002: invalid deflate data
  Counter inflate_too_big;          // closed with 1009: inflated past max_message
  Counter deflate_context_bytes;    // gauge: zlib state of context-takeover connections
  // Not in kEndpointMetrics (labelled families, exported by ops/metrics_registry.cpp):
  CloseCounters closes;
  HandshakeHistogram handshake_time;
};

inline constexpr MetricInfo<EndpointCounters> kEndpointMetrics[] = {
    {"handshakes_total", "WebSocket upgrades completed", MetricType::kCounter,
     &EndpointCounters::handshakes},
    {"handshakes_rejected_total", "upgrade requests answered with an HTTP error",
     MetricType::kCounter, &EndpointCounters::handshake_rejected},
    {"handshake_timeouts_total", "connections that did not complete the upgrade in time",
     MetricType::kCounter, &EndpointCounters::handshake_timeouts},
    {"upgrades_pending_total", "upgrades whose decision the application deferred",
     MetricType::kCounter, &EndpointCounters::upgrades_pending},
    {"upgrade_timeouts_total", "deferred upgrades not decided before the deadline (503)",
     MetricType::kCounter, &EndpointCounters::upgrade_timeouts},
    {"upgrades_abandoned_total", "deferred upgrades whose client left before the decision",
     MetricType::kCounter, &EndpointCounters::upgrade_abandoned},
    {"health_checks_total", "GET /healthz answered", MetricType::kCounter,
     &EndpointCounters::health_checks},
    {"pages_served_total", "static pages served to plain GETs", MetricType::kCounter,
     &EndpointCounters::pages_served},
    {"messages_received_total", "WebSocket messages received", MetricType::kCounter,
     &EndpointCounters::messages_in},
    {"messages_sent_total", "WebSocket messages sent", MetricType::kCounter,
     &EndpointCounters::messages_out},
    {"received_payload_bytes_total", "payload bytes of WebSocket messages received",
     MetricType::kCounter, &EndpointCounters::payload_bytes_in},
    {"sent_payload_bytes_total", "payload bytes of WebSocket messages sent", MetricType::kCounter,
     &EndpointCounters::payload_bytes_out},
    {"pings_received_total", "pings received", MetricType::kCounter, &EndpointCounters::pings_in},
    {"pings_sent_total", "keep-alive pings sent", MetricType::kCounter,
     &EndpointCounters::pings_sent},
    {"closes_received_total", "Close frames received", MetricType::kCounter,
     &EndpointCounters::closes_in},
    {"protocol_errors_total", "connections closed with 1002 (protocol error)", MetricType::kCounter,
     &EndpointCounters::protocol_errors},
    {"invalid_utf8_total", "connections closed with 1007 (invalid UTF-8)", MetricType::kCounter,
     &EndpointCounters::invalid_utf8},
    {"too_big_total", "connections closed with 1009 (message or fragment count over the limit)",
     MetricType::kCounter, &EndpointCounters::too_big},
    {"assembly_refused_total", "connections closed with 1009 (core's assembly budget spent)",
     MetricType::kCounter, &EndpointCounters::assembly_refused},
    {"backlog_exceeded_total", "connections closed with 1008 (peer stopped reading)",
     MetricType::kCounter, &EndpointCounters::backlog_exceeded},
    {"ping_timeouts_total", "connections closed with 1011 (no pong)", MetricType::kCounter,
     &EndpointCounters::ping_timeouts},
    {"close_timeouts_total", "closing handshakes the peer did not finish in time",
     MetricType::kCounter, &EndpointCounters::close_timeouts},
    {"abnormal_closes_total", "connections ended without a Close handshake", MetricType::kCounter,
     &EndpointCounters::abnormal_closes},
    {"tls_handshakes_total", "TLS handshakes completed", MetricType::kCounter,
     &EndpointCounters::tls_handshakes},
    {"tls_resumed_total", "TLS handshakes that resumed a session", MetricType::kCounter,
     &EndpointCounters::tls_resumed},
    {"tls_own_record_layer_total",
     "TLS 1.3 connections whose records moved from OpenSSL to our own layer after the handshake",
     MetricType::kCounter, &EndpointCounters::tls_own_records},
    {"tls_errors_total", "TLS failures (bad handshakes and records, plain HTTP on TLS)",
     MetricType::kCounter, &EndpointCounters::tls_errors},
    {"first_byte_timeouts_total", "connections dropped for sending nothing after accept",
     MetricType::kCounter, &EndpointCounters::first_byte_timeouts},
    {"slow_recv_closes_total", "connections closed for sending a request or frame too slowly",
     MetricType::kCounter, &EndpointCounters::slow_recv_closes},
    {"ip_conn_refused_total", "upgrades refused (503): too many connections from the address",
     MetricType::kCounter, &EndpointCounters::ip_conn_refused},
    {"ip_rate_refused_total", "upgrades refused (429): the address's handshake rate",
     MetricType::kCounter, &EndpointCounters::ip_rate_refused},
    {"msg_rate_closes_total", "connections closed with 1008 (message rate exceeded)",
     MetricType::kCounter, &EndpointCounters::msg_rate_closes},
    {"byte_rate_closes_total", "connections closed with 1008 (byte rate exceeded)",
     MetricType::kCounter, &EndpointCounters::byte_rate_closes},
    {"origin_refused_total", "upgrades refused (403): Origin not allowed", MetricType::kCounter,
     &EndpointCounters::origin_refused},
    {"proxy_headers_total", "PROXY protocol headers accepted", MetricType::kCounter,
     &EndpointCounters::proxy_headers},
    {"proxy_header_errors_total",
     "connections closed for a malformed or missing PROXY protocol header", MetricType::kCounter,
     &EndpointCounters::proxy_header_errors},
    {"deflate_negotiated_total", "connections that negotiated permessage-deflate",
     MetricType::kCounter, &EndpointCounters::deflate_negotiated},
    {"deflate_context_refused_total",
     "directions negotiated without context takeover for want of --deflate-context-memory",
     MetricType::kCounter, &EndpointCounters::deflate_context_refused},
    {"messages_deflated_total", "messages sent compressed", MetricType::kCounter,
     &EndpointCounters::messages_deflated},
    {"deflate_in_bytes_total", "payload bytes of messages sent compressed, before compression",
     MetricType::kCounter, &EndpointCounters::deflate_in_bytes},
    {"deflate_out_bytes_total", "payload bytes of messages sent compressed, after compression",
     MetricType::kCounter, &EndpointCounters::deflate_out_bytes},
    {"messages_inflated_total", "compressed messages received", MetricType::kCounter,
     &EndpointCounters::messages_inflated},
    {"inflate_in_bytes_total", "payload bytes of compressed messages received, as received",
     MetricType::kCounter, &EndpointCounters::inflate_in_bytes},
    {"inflate_out_bytes_total", "payload bytes of compressed messages received, inflated",
     MetricType::kCounter, &EndpointCounters::inflate_out_bytes},
    {"inflate_errors_total", "connections closed with 1002 for invalid deflate data",
     MetricType::kCounter, &EndpointCounters::inflate_errors},
    {"inflate_too_big_total", "connections closed with 1009: inflated past --max-message",
     MetricType::kCounter, &EndpointCounters::inflate_too_big},
    {"deflate_context_bytes", "zlib state held by context-takeover connections", MetricType::kGauge,
     &EndpointCounters::deflate_context_bytes},
};

}  // namespace wsedge::ws
