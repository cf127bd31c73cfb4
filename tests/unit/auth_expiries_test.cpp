// The expiry queue behind the 4401 closes: who expires when, and that its size follows the
// connections, not the refreshes and EXPIRES they get nor the connections already gone.
#include "auth/expiries.hpp"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace wsedge::auth {
namespace {

struct Fixture {
  std::map<int, Identity> conns;  // open connections by id
  Expiries<int> q;
  std::vector<int> expired;

  Identity* find(int id) {
    auto it = conns.find(id);
    return it == conns.end() ? nullptr : &it->second;
  }
  void open(int id, std::int64_t exp) {
    conns[id].exp = exp;
    watch(id);
  }
  void set(int id, std::int64_t exp) {  // EXPIRES, or a refresh
    conns[id].exp = exp;
    watch(id);
  }
  void watch(int id) {
    q.watch(id, conns[id], [&](int i) { return find(i); });
  }
  void tick(std::int64_t now) {
    q.due(
        now, [&](int i) { return find(i); },
        [&](int i, Identity&) {
          expired.push_back(i);
          conns.erase(i);  // closed: its on_close forgets it
        });
  }
};

TEST(AuthExpiries, ClosesAtExpAndNotBefore) {
  Fixture f;
  f.open(1, 100);
  f.open(2, 50);
  f.tick(49);
  EXPECT_TRUE(f.expired.empty());
  f.tick(50);
  EXPECT_EQ(f.expired, std::vector<int>{2});
  f.tick(100);
  EXPECT_EQ(f.expired, (std::vector<int>{2, 1}));
  EXPECT_EQ(f.q.size(), 0u);
}

TEST(AuthExpiries, ZeroIsNever) {
  Fixture f;
  f.open(1, 0);
  EXPECT_EQ(f.q.size(), 0u);
  f.open(2, 10);
  f.set(2, 0);  // EXPIRES 0
  f.tick(1000);
  EXPECT_TRUE(f.expired.empty());
  f.set(2, 2000);  // and a time again
  f.tick(2000);
  EXPECT_EQ(f.expired, std::vector<int>{2});
}

TEST(AuthExpiries, ExtendedWaitsOnShortenedComesEarly) {
  Fixture f;
  f.open(1, 100);
  f.set(1, 300);  // later: no new entry, the one at 100 queues 300 when it pops
  EXPECT_EQ(f.q.size(), 1u);
  f.tick(100);
  EXPECT_TRUE(f.expired.empty());
  f.set(1, 200);  // earlier than what is queued (300): its own entry
  f.tick(199);
  EXPECT_TRUE(f.expired.empty());
  f.tick(200);
  EXPECT_EQ(f.expired, std::vector<int>{1});
  f.tick(300);  // the superseded entry finds nothing
  EXPECT_EQ(f.expired, std::vector<int>{1});
}

TEST(AuthExpiries, AnExpInThePastClosesAtTheNextTick) {
  Fixture f;  // admitted within the leeway after its exp
  f.open(1, 90);
  f.tick(100);
  EXPECT_EQ(f.expired, std::vector<int>{1});
}

TEST(AuthExpiries, GoneConnectionsAreSkipped) {
  Fixture f;
  f.open(1, 100);
  f.conns.erase(1);  // closed by its client
  f.open(2, 100);
  f.tick(100);
  EXPECT_EQ(f.expired, std::vector<int>{2});
}

TEST(AuthExpiries, RefreshSpamDoesNotGrowTheQueue) {
  Fixture f;
  f.open(1, 1000);
  // A client sending two valid tokens in turn, each refresh moving its exp.
  for (int i = 0; i < 100000; ++i) f.set(1, i % 2 ? 2000 : 1000);
  EXPECT_LE(f.q.size(), 1u);
  f.set(1, 2000);
  f.tick(1000);
  EXPECT_TRUE(f.expired.empty());
  f.tick(2000);
  EXPECT_EQ(f.expired, std::vector<int>{1});
}

TEST(AuthExpiries, ShorteningSpamIsSweptToTheLiveEntries) {
  Fixture f;
  // EXPIRES moving a connection's exp ever earlier: an entry each, the older ones dead.
  for (int i = 0; i < 10000; ++i) f.set(1, 1000000 - i);
  EXPECT_LE(f.q.size(), 64u);
  f.tick(1000000 - 9999);
  EXPECT_EQ(f.expired, std::vector<int>{1});
}

TEST(AuthExpiries, ClosedConnectionsDoNotAccumulate) {
  Fixture f;
  f.open(0, 5000);  // one that stays
  // A client reconnecting over and over with a token that expires much later.
  for (int i = 1; i <= 100000; ++i) {
    f.open(i, 86400);
    f.conns.erase(i);
  }
  EXPECT_LE(f.q.size(), 64u);
  f.tick(5000);
  EXPECT_EQ(f.expired, std::vector<int>{0});
}

}  // namespace
}  // namespace wsedge::auth
