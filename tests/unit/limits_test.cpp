#include "engine/ws/limits.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wsedge::ws {
namespace {

TEST(TokenBucket, ABurstThenTheRate) {
  RateLimit l{10, 3};  // 10 a second: one every 100 ms
  TokenBucket b;
  b.fill(l, 1000);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(b.take(l, 1000, 1)) << i;
  EXPECT_FALSE(b.take(l, 1000, 1));
  EXPECT_EQ(b.wait_ms(l, 1000, 1), 100u);
  EXPECT_FALSE(b.take(l, 1099, 1));  // 0.99 of a token
  EXPECT_TRUE(b.take(l, 1100, 1));
  EXPECT_FALSE(b.take(l, 1100, 1));
}

TEST(TokenBucket, ARefusedTakeCostsNothing) {
  RateLimit l{1, 1};
  TokenBucket b;
  b.fill(l, 0);
  EXPECT_TRUE(b.take(l, 0, 1));
  for (std::uint64_t t = 0; t < 1000; t += 100) EXPECT_FALSE(b.take(l, t, 1)) << t;
  EXPECT_TRUE(b.take(l, 1000, 1));  // a refusal did not push the next token away
}

TEST(TokenBucket, SlowRatesAccrueExactlyAndLongIdleCapsAtTheBurst) {
  RateLimit l{3, 2};  // one token every 333.3 ms: no rounding to zero per millisecond
  TokenBucket b;
  b.fill(l, 0);
  EXPECT_TRUE(b.take(l, 0, 2));
  EXPECT_FALSE(b.take(l, 333, 1));
  EXPECT_TRUE(b.take(l, 334, 1));
  // Idle for a year: full, not overflowed.
  std::uint64_t later = 334 + 365ull * 86400 * 1000;
  EXPECT_TRUE(b.full(l, later));
  EXPECT_TRUE(b.take(l, later, 2));
  EXPECT_FALSE(b.take(l, later, 1));
}

TEST(TokenBucket, ByteBucketsTakeManyAndAClockGoingBackRefillsNothing) {
  RateLimit l{1000, 4096};
  TokenBucket b;
  b.fill(l, 500);
  EXPECT_TRUE(b.take(l, 500, 4000));
  EXPECT_FALSE(b.take(l, 400, 100));  // earlier than the fill: no refill, no wrap
  EXPECT_EQ(b.wait_ms(l, 500, 100), 4u);
  EXPECT_EQ(b.wait_ms(l, 500, 5000), UINT64_MAX);  // over the burst: never
  EXPECT_TRUE(b.take(l, 504, 100));
}

TEST(TokenBucket, NoRateIsNoLimit) {
  RateLimit off{};
  TokenBucket b;
  EXPECT_TRUE(b.take(off, 0, 1'000'000));
  EXPECT_EQ(b.wait_ms(off, 0, 5), 0u);
  EXPECT_TRUE(b.full(off, 0));
}

io::PeerAddress v4(std::uint8_t last) {
  io::PeerAddress p;
  p.ip = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 127, 0, 0, last};
  p.port = 40000;
  return p;
}

TEST(IpTable, CountsConnectionsPerAddressWhateverThePort) {
  IpTable t({0, 0});
  io::PeerAddress a = v4(1), a2 = v4(1), b = v4(2);
  a2.port = 40001;
  IpTable::Entry* e1 = t.acquire(a, 0);
  IpTable::Entry* e2 = t.acquire(a2, 0);
  IpTable::Entry* e3 = t.acquire(b, 0);
  EXPECT_EQ(e1, e2);
  EXPECT_NE(e1, e3);
  EXPECT_EQ(e1->conns, 2u);
  EXPECT_EQ(t.size(), 2u);
  io::PeerAddress v6;
  v6.ip[15] = 1;  // ::1 is not ::ffff:127.0.0.1
  EXPECT_NE(t.acquire(v6, 0), e1);
  EXPECT_EQ(t.size(), 3u);
}

TEST(IpTable, AnAddressWithoutConnectionsAndAFullBucketGoesAtOnce) {
  IpTable t({0, 0});  // connection limit only: nothing to remember after the last one
  IpTable::Entry* e = t.acquire(v4(1), 0);
  t.acquire(v4(1), 0);
  t.release(e, 0);
  EXPECT_EQ(t.size(), 1u);
  t.release(e, 0);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.idle(), 0u);
}

TEST(IpTable, ARefillingBucketOutlivesTheConnectionsUntilTheSweepFindsItFull) {
  IpTable t({2, 4});  // 2 handshakes a second, burst 4: full again 2 s after emptying
  std::uint32_t retry = 0;
  IpTable::Entry* e = t.acquire(v4(1), 0);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(t.take_handshake(e, 0, retry));
  EXPECT_FALSE(t.take_handshake(e, 0, retry));
  EXPECT_EQ(retry, 1u);  // 500 ms to a token, rounded up to whole seconds
  t.release(e, 0);
  // Kept: reconnecting must not hand the address a fresh burst.
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.idle(), 1u);
  e = t.acquire(v4(1), 10);
  EXPECT_EQ(t.idle(), 0u);
  EXPECT_FALSE(t.take_handshake(e, 10, retry));
  t.release(e, 10);
  EXPECT_EQ(t.sweep(1000), 1u);  // half full
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.sweep(2000), 0u);
  EXPECT_EQ(t.size(), 0u);
}

TEST(IpTable, ManyAddressesComeAndGo) {
  IpTable t({1, 1});
  std::vector<IpTable::Entry*> held;
  std::uint32_t retry = 0;
  for (int i = 0; i < 200; ++i) {
    io::PeerAddress p;
    p.ip[0] = 0x20;
    p.ip[14] = static_cast<std::uint8_t>(i >> 8);
    p.ip[15] = static_cast<std::uint8_t>(i);
    held.push_back(t.acquire(p, 0));
    EXPECT_TRUE(t.take_handshake(held.back(), 0, retry));
  }
  for (IpTable::Entry* e : held) t.release(e, 0);
  EXPECT_EQ(t.size(), 200u);
  EXPECT_EQ(t.sweep(999), 200u);
  EXPECT_EQ(t.sweep(1000), 0u);
  EXPECT_EQ(t.size(), 0u);
}

TEST(Origin, EmptyListAndAbsentOriginPass) {
  std::vector<std::string> none, some = {"https://example.com"};
  EXPECT_TRUE(origin_allowed(none, "https://evil.test"));
  EXPECT_TRUE(origin_allowed(some, ""));
}

TEST(Origin, ExactMatchIgnoresTheCaseOfSchemeAndHostButNotThePort) {
  std::vector<std::string> allowed = {"https://example.com", "http://localhost:8080"};
  EXPECT_TRUE(origin_allowed(allowed, "https://example.com"));
  EXPECT_TRUE(origin_allowed(allowed, "HTTPS://Example.COM"));
  EXPECT_TRUE(origin_allowed(allowed, "http://localhost:8080"));
  EXPECT_FALSE(origin_allowed(allowed, "http://localhost:8081"));
  EXPECT_FALSE(origin_allowed(allowed, "http://localhost"));
  EXPECT_FALSE(origin_allowed(allowed, "http://example.com"));
  EXPECT_FALSE(origin_allowed(allowed, "https://example.com.evil.test"));
  EXPECT_FALSE(origin_allowed(allowed, "https://notexample.com"));
  EXPECT_FALSE(origin_allowed(allowed, "null"));
}

TEST(Origin, AWildcardMatchesSubdomainsOnly) {
  std::vector<std::string> allowed = {"https://*.example.com"};
  EXPECT_TRUE(origin_allowed(allowed, "https://app.example.com"));
  EXPECT_TRUE(origin_allowed(allowed, "https://a.b.Example.com"));
  EXPECT_FALSE(origin_allowed(allowed, "https://example.com"));
  EXPECT_FALSE(origin_allowed(allowed, "https://.example.com"));
  EXPECT_FALSE(origin_allowed(allowed, "http://app.example.com"));
  EXPECT_FALSE(origin_allowed(allowed, "https://appexample.com"));
  EXPECT_FALSE(origin_allowed(allowed, "https://app.example.com:8443"));
  EXPECT_FALSE(origin_allowed(allowed, "https://evil.test:1@x.example.com"));
  EXPECT_FALSE(origin_allowed(allowed, "https://evil.test/.example.com"));
  std::vector<std::string> ported = {"http://*.example.com:8080"};
  EXPECT_TRUE(origin_allowed(ported, "http://dev.example.com:8080"));
  EXPECT_FALSE(origin_allowed(ported, "http://dev.example.com"));
}

}  // namespace
}  // namespace wsedge::ws
