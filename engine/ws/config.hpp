#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wsedge::ws {

// A page served on the WebSocket port to a plain GET of `path` (the target without its query),
// e.g. a demo client at "/". `body` points at storage that outlives the endpoint (a compiled-in
// array): it is queued from there, never owned. `content_type` goes into the answer as it is
// (no CR or LF: it is configuration, not input).
struct StaticPage {
  std::string path;
  std::string content_type;
  std::string_view body;
};

// permessage-deflate (docs/DEFLATE.md). kDefault is for UpgradeDecision::deflate: "the
// endpoint's mode"; as EndpointConfig's mode it means off.
enum class DeflateMode : std::uint8_t { kDefault, kOff, kNoContextTakeover, kContextTakeover };

struct DeflateConfig {
  DeflateMode mode = DeflateMode::kOff;  // the flags' default is kNoContextTakeover
  std::uint32_t min_size = 64;           // smaller messages are sent uncompressed
  int level = 6;                         // 1 (fastest) .. 9 (smallest)
  // Per core: zlib state of context-takeover connections; a connection that would pass it
  // negotiates without context takeover.
  std::uint64_t context_memory = std::uint64_t{64} << 20;
  bool operator==(const DeflateConfig&) const = default;
};

struct EndpointConfig {
  std::uint64_t max_message = std::uint64_t{16} << 20;  // larger messages close with 1009
  std::size_t max_header_bytes = 8192;                  // larger upgrade requests get 431
  std::uint32_t handshake_timeout_ms = 10000;
  // A client that sends nothing this long after accept is dropped without an answer (it said
  // nothing); its handshake deadline still runs from accept. Over TLS its first byte is the
  // ClientHello. 0, or not below handshake_timeout_ms: only the handshake deadline applies.
  std::uint32_t first_byte_timeout_ms = 5000;
  // While an upgrade request or a frame is incomplete, the bytes received since it became so
  // must average this many a second once it has been incomplete for recv_rate_grace_ms, else
  // 408 (handshake) or Close 1008 (open): a client trickling one byte a second held a
  // connection forever. Idle between messages is ping_interval_ms's business. 0 = off.
  std::uint32_t min_recv_rate = 1024;
  std::uint32_t recv_rate_grace_ms = 2000;
  // Per peer address and core (SO_REUSEPORT spreads one address over the cores, so with N cores
  // an address may get up to N times these). Concurrent connections, handshaking or open, past
  // which an upgrade request gets 503; 0 = off.
  std::uint32_t max_conns_per_ip = 0;
  // Upgrades a second per address, with a burst (0: twice the rate, at least 1); one without a
  // token gets 429 and Retry-After. 0 = off.
  std::uint32_t handshake_rate_per_ip = 0;
  std::uint32_t handshake_burst_per_ip = 0;
  // Per connection: received messages, and their payload bytes, a second, with bursts (0: one
  // second's worth); past them Close 1008. A message larger than byte_burst always exceeds
  // it. 0 = off.
  std::uint32_t max_msg_rate = 0;
  std::uint32_t msg_burst = 0;
  std::uint64_t max_byte_rate = 0;
  std::uint64_t byte_burst = 0;
  // Origins an upgrade may come from, e.g. "https://example.com", "http://localhost:8080",
  // "https://*.example.com" (subdomains only); others get 403. A request without Origin is not
  // from a browser and passes. Empty = any.
  std::vector<std::string> allowed_origins;
  std::uint32_t ping_interval_ms =
      30000;  // idle time before a ping; twice that without a reply closes; 0 = off
  std::uint32_t close_timeout_ms = 5000;  // wait for the peer's Close after sending ours
  // How long an upgrade whose decision on_upgrade deferred may wait for it (then 503).
  std::uint32_t upgrade_decision_timeout_ms = 10000;
  // Bytes all unfinished (fragmented or split) messages of one core may hold together; the
  // connection that needs more is closed with 1009. Without it, 50 clients each holding a
  // message just under max_message took a server to 1 GiB.
  std::uint64_t max_assembly_bytes = std::uint64_t{256} << 20;
  // Frames per message; one more closes with 1009. Autobahn 9.3.1 sends 65,536.
  std::uint32_t max_fragments = 1 << 17;
  std::size_t max_outbound = std::size_t{64}
                             << 20;  // queued output that closes a non-reading peer (1008)
  // Answered 200 to a plain GET of their path; any other plain GET but /healthz gets 426. A
  // few pages: looked up by a linear scan.
  std::vector<StaticPage> pages;
  // One `access` log line per finished WebSocket connection (docs/OPERATIONS.md §2), at most
  // access_log_rate a second per core: past it lines are counted and the next one says how
  // many were suppressed. Off, no per-connection statistics are kept.
  bool access_log = false;
  std::uint32_t access_log_rate = 1000;
  DeflateConfig deflate;
  // After a TLS 1.3 handshake, free OpenSSL's SSL object (~14 KB) and seal and open records
  // ourselves (docs/TLS-RECORD.md); false keeps OpenSSL's record layer. TLS 1.2 always keeps it.
  bool tls_own_records = true;
};

}  // namespace wsedge::ws
