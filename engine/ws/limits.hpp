#pragma once
// The arithmetic of the endpoint's abuse limits, pure (no sockets, no clocks: time comes in as
// milliseconds), so each rule is tested alone: token buckets (per-connection message and byte
// rates, per-address handshake rates), the per-address table, and Origin matching.
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "engine/io/peer_address.hpp"

namespace wsedge::ws {

// `rate` tokens a second, at most `burst` held. rate 0 means no limit.
struct RateLimit {
  std::uint64_t rate = 0;
  std::uint64_t burst = 0;
};

// A token bucket in integer arithmetic: the level is kept in thousandths of a token, so a
// refill at millisecond resolution is exact (elapsed_ms * rate) and never rounds a slow rate
// down to nothing. 16 bytes.
struct TokenBucket {
  std::uint64_t milli = 0;    // tokens held, x1000
  std::uint64_t last_ms = 0;  // when `milli` was last brought up to date

  // Full: a new client gets its whole burst.
  void fill(const RateLimit& l, std::uint64_t now_ms) {
    milli = l.burst * 1000;
    last_ms = now_ms;
  }
  // Takes n tokens if the bucket holds them (always, with no rate); else takes nothing (a refused
  // take costs the client nothing, so refusals do not push its next success further away).
  bool take(const RateLimit& l, std::uint64_t now_ms, std::uint64_t n);
  // Milliseconds until n tokens are held (0 when they are now); UINT64_MAX when n exceeds the
  // burst: never.
  std::uint64_t wait_ms(const RateLimit& l, std::uint64_t now_ms, std::uint64_t n);
  bool full(const RateLimit& l, std::uint64_t now_ms) {
    if (!l.rate) return true;
    refill(l, now_ms);
    return milli >= l.burst * 1000;
  }

 private:
  void refill(const RateLimit& l, std::uint64_t now_ms);
};

// Per-address state of one core: concurrent connections and the handshake bucket. An entry
// exists while its address has a connection, or a bucket still refilling after its last one
// left (forgetting it then would hand a client that reconnects in a loop a fresh burst each
// time); sweep() drops the rest. So the table holds at most the core's connections plus the
// addresses seen within one refill time (burst / rate seconds).
class IpTable {
 public:
  struct Entry {
    std::array<std::uint8_t, 16> ip;
    std::uint32_t conns = 0;
    TokenBucket handshakes;
  };

  explicit IpTable(RateLimit handshakes) : limit_(handshakes) {}
  // A new handshake rate (a reload): each address's bucket keeps its level and refills at it.
  void set_limit(RateLimit handshakes) { limit_ = handshakes; }
  // Counts a connection from `peer`: its entry, created with a full bucket if new. The pointer
  // stays valid until release() of its last connection (node-based map).
  Entry* acquire(const io::PeerAddress& peer, std::uint64_t now_ms);
  // The connection is gone; an entry left with no connection and a full bucket goes at once.
  void release(Entry* e, std::uint64_t now_ms);
  // Takes one handshake token; when there is none, `retry_s` is the wait for the next one in
  // whole seconds (at least 1), for Retry-After.
  bool take_handshake(Entry* e, std::uint64_t now_ms, std::uint32_t& retry_s);
  // Drops entries with no connection and a full bucket; returns how many idle ones are left.
  std::size_t sweep(std::uint64_t now_ms);
  std::size_t idle() const { return idle_; }
  std::size_t size() const { return map_.size(); }

 private:
  struct Hash {
    std::size_t operator()(const std::array<std::uint8_t, 16>& ip) const;
  };
  bool drop_if_done(Entry* e, std::uint64_t now_ms);

  RateLimit limit_;
  std::unordered_map<std::array<std::uint8_t, 16>, Entry, Hash> map_;
  std::size_t idle_ = 0;  // entries with no connection
};

// Origin against an allow-list. Empty list: any. An absent Origin passes (not a browser:
// Origin defends browsers, and any other client sets whatever it likes). Scheme and host
// compare case-insensitively (RFC 6454 §6.2 serializes them lowercased; clients vary); the
// port exactly. "https://*.example.com" allows every subdomain of example.com at any depth,
// not example.com itself.
bool origin_allowed(std::span<const std::string> allowed, std::string_view origin);

}  // namespace wsedge::ws
