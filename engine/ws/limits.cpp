#include "limits.hpp"

#include <algorithm>
#include <cstring>

namespace wsedge::ws {

void TokenBucket::refill(const RateLimit& l, std::uint64_t now_ms) {
  std::uint64_t cap = l.burst * 1000;
  // A clock that reads earlier than last time (a bucket filled in a later turn than the one
  // asking) refills nothing rather than wrapping to a huge elapsed time.
  std::uint64_t elapsed = now_ms > last_ms ? now_ms - last_ms : 0;
  last_ms = std::max(last_ms, now_ms);
  if (milli >= cap) return;
  // elapsed * rate: capped first, so a bucket idle for days cannot overflow the product.
  std::uint64_t need_ms = (cap - milli + l.rate - 1) / l.rate;
  milli = elapsed >= need_ms ? cap : milli + elapsed * l.rate;
}

bool TokenBucket::take(const RateLimit& l, std::uint64_t now_ms, std::uint64_t n) {
  if (!l.rate) return true;
  refill(l, now_ms);
  if (milli < n * 1000) return false;
  milli -= n * 1000;
  return true;
}

std::uint64_t TokenBucket::wait_ms(const RateLimit& l, std::uint64_t now_ms, std::uint64_t n) {
  if (!l.rate) return 0;
  if (n > l.burst) return UINT64_MAX;
  refill(l, now_ms);
  if (milli >= n * 1000) return 0;
  return (n * 1000 - milli + l.rate - 1) / l.rate;
}

std::size_t IpTable::Hash::operator()(const std::array<std::uint8_t, 16>& ip) const {
  std::uint64_t a, b;
  std::memcpy(&a, ip.data(), 8);
  std::memcpy(&b, ip.data() + 8, 8);
  // IPv4 lives in the low half (::ffff:a.b.c.d): mix so both halves reach every bucket.
  return std::hash<std::uint64_t>{}(a * 0x9E3779B97F4A7C15ull ^ b);
}

IpTable::Entry* IpTable::acquire(const io::PeerAddress& peer, std::uint64_t now_ms) {
  auto [it, fresh] = map_.try_emplace(peer.ip);
  Entry& e = it->second;
  if (fresh) {
    e.ip = peer.ip;
    e.handshakes.fill(limit_, now_ms);
  } else if (e.conns == 0) {
    --idle_;
  }
  ++e.conns;
  return &e;
}

bool IpTable::drop_if_done(Entry* e, std::uint64_t now_ms) {
  if (e->conns || !e->handshakes.full(limit_, now_ms)) return false;
  map_.erase(e->ip);
  return true;
}

void IpTable::release(Entry* e, std::uint64_t now_ms) {
  if (--e->conns == 0 && !drop_if_done(e, now_ms)) ++idle_;
}

bool IpTable::take_handshake(Entry* e, std::uint64_t now_ms, std::uint32_t& retry_s) {
  if (e->handshakes.take(limit_, now_ms, 1)) return true;
  std::uint64_t ms = e->handshakes.wait_ms(limit_, now_ms, 1);
  retry_s = static_cast<std::uint32_t>(std::max<std::uint64_t>(1, (ms + 999) / 1000));
  return false;
}

std::size_t IpTable::sweep(std::uint64_t now_ms) {
  for (auto it = map_.begin(); it != map_.end();) {
    Entry& e = it->second;
    if (e.conns == 0 && e.handshakes.full(limit_, now_ms)) {
      it = map_.erase(it);
      --idle_;
    } else {
      ++it;
    }
  }
  return idle_;
}

namespace {

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
           return lower(x) == lower(y);
         });
}

// "https://*.example.com[:port]" against an origin: same scheme, a host ending in
// ".example.com" with at least one label before it, the same port.
bool wildcard_match(std::string_view pattern, std::string_view origin) {
  std::size_t star = pattern.find("://*.");
  if (star == std::string_view::npos) return false;
  std::string_view scheme = pattern.substr(0, star + 3);             // "https://"
  std::string_view suffix = pattern.substr(star + 4);                // ".example.com[:port]"
  if (origin.size() <= scheme.size() + suffix.size()) return false;  // no label: the apex
  if (!iequal(origin.substr(0, scheme.size()), scheme) ||
      !iequal(origin.substr(origin.size() - suffix.size()), suffix))
    return false;
  // The labels the star stands for: a host part only, so "https://evil.com:1@x.example.com"
  // or a port smuggled in before the suffix cannot pass.
  std::string_view labels =
      origin.substr(scheme.size(), origin.size() - scheme.size() - suffix.size());
  return labels.find_first_of(":/@?#") == std::string_view::npos && labels.front() != '.';
}

}  // namespace

bool origin_allowed(std::span<const std::string> allowed, std::string_view origin) {
  if (allowed.empty() || origin.empty()) return true;
  for (const std::string& a : allowed) {
    if (iequal(a, origin) || wildcard_match(a, origin)) return true;
  }
  return false;
}

}  // namespace wsedge::ws
