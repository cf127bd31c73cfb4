// The subscription table: both directions stay consistent through any order of subscribes,
// unsubscribes and closes, and ZeroMQ filters change exactly at a channel's first and last
// subscriber.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "bridge/channels.hpp"

namespace wsedge::bridge {
namespace {

using Change = Channels::Change;

io::SocketId conn(std::uint32_t i) {
  return {i, 7};
}

std::set<std::uint32_t> subscribers(Channels& t, const std::string& ch) {
  std::set<std::uint32_t> out;
  if (Channels::Channel* c = t.find(ch)) {
    for (const auto& s : c->subs) out.insert(s.id.idx);
  }
  return out;
}

TEST(BridgeChannels, FirstAndLastSubscriberChangeTheFilter) {
  Channels t;
  EXPECT_EQ(t.subscribe(conn(1), "chat"), Change::kFirst);
  EXPECT_EQ(t.subscribe(conn(2), "chat"), Change::kNone);
  EXPECT_EQ(t.subscribe(conn(2), "chat"), Change::kNone);  // twice is once
  EXPECT_EQ(t.subscription_count(), 2u);
  EXPECT_TRUE(t.has(conn(2), "chat"));
  EXPECT_FALSE(t.has(conn(2), "other"));
  EXPECT_FALSE(t.has(conn(9), "chat"));  // a slot the table has never seen
  EXPECT_EQ(t.unsubscribe(conn(1), "chat"), Change::kNone);
  EXPECT_FALSE(t.has(conn(1), "chat"));
  EXPECT_EQ(t.unsubscribe(conn(1), "chat"), Change::kNone);  // not subscribed any more
  EXPECT_EQ(t.unsubscribe(conn(2), "chat"), Change::kLast);
  EXPECT_EQ(t.find("chat"), nullptr);
  EXPECT_EQ(t.channel_count(), 0u);
}

TEST(BridgeChannels, NamesArePreciseNotPrefixes) {
  Channels t;
  t.subscribe(conn(1), "chat");
  t.subscribe(conn(2), "chatter");
  EXPECT_EQ(subscribers(t, "chat"), std::set<std::uint32_t>{1});
  EXPECT_EQ(subscribers(t, "chatter"), std::set<std::uint32_t>{2});
  EXPECT_FALSE(t.has(conn(1), "chatter"));
  EXPECT_TRUE(t.has(conn(2), "chatter"));
}

TEST(BridgeChannels, CloseLeavesEveryChannelAndReportsTheEmptiedOnes) {
  Channels t;
  t.subscribe(conn(1), "a");
  t.subscribe(conn(1), "b");
  t.subscribe(conn(2), "b");
  std::vector<std::string> emptied;
  t.unsubscribe_all(conn(1), [&](std::string_view ch) { emptied.emplace_back(ch); });
  EXPECT_EQ(emptied, std::vector<std::string>{"a"});
  EXPECT_EQ(subscribers(t, "b"), std::set<std::uint32_t>{2});
  EXPECT_EQ(t.count_of(conn(1)), 0u);
}

// A model (sets) and the table go through the same random operations; after each, every
// channel's subscribers and every connection's channels agree both ways.
TEST(BridgeChannels, RandomOperationsKeepBothDirectionsConsistent) {
  Channels t;
  std::vector<std::set<std::string>> model(40);
  std::mt19937 rng(12345);
  const std::vector<std::string> names = {"a", "b", "c", "d", "e", "f", "room:1", "room:2"};
  for (int step = 0; step < 20000; ++step) {
    std::uint32_t c = rng() % model.size();
    const std::string& ch = names[rng() % names.size()];
    int op = static_cast<int>(rng() % 10);
    bool had_any = !subscribers(t, ch).empty();
    if (op < 6) {
      Change r = t.subscribe(conn(c), ch);
      EXPECT_EQ(r == Change::kFirst, !had_any);
      model[c].insert(ch);
    } else if (op < 9) {
      bool was = model[c].erase(ch) > 0;
      Change r = t.unsubscribe(conn(c), ch);
      EXPECT_EQ(r == Change::kLast, was && subscribers(t, ch).empty());
    } else {
      t.unsubscribe_all(conn(c), [](std::string_view) {});
      model[c].clear();
    }
    if (step % 97 != 0) continue;
    std::size_t total = 0;
    for (const std::string& n : names) {
      std::set<std::uint32_t> expect;
      for (std::uint32_t i = 0; i < model.size(); ++i) {
        if (model[i].count(n)) expect.insert(i);
      }
      ASSERT_EQ(subscribers(t, n), expect) << n << " at step " << step;
      total += expect.size();
    }
    for (std::uint32_t i = 0; i < model.size(); ++i) {
      std::set<std::string> have;
      t.for_each_of(conn(i), [&](std::string_view n) { have.emplace(n); });
      ASSERT_EQ(have, model[i]) << "connection " << i;
    }
    ASSERT_EQ(t.subscription_count(), total);
  }
}

TEST(BridgeChannels, SequenceGapsArePerPublisher) {
  Channels t;
  t.subscribe(conn(1), "x");
  Channels::Channel& c = *t.find("x");
  EXPECT_EQ(Channels::note_seq(c, "p1", 5), 0u);  // first heard: nothing lost
  EXPECT_EQ(Channels::note_seq(c, "p1", 6), 0u);
  EXPECT_EQ(Channels::note_seq(c, "p2", 1), 0u);
  EXPECT_EQ(Channels::note_seq(c, "p1", 9), 2u);  // 7 and 8 lost
  EXPECT_EQ(Channels::note_seq(c, "p2", 2), 0u);
  EXPECT_EQ(Channels::note_seq(c, "p1", 1), 0u);  // restarted publisher
  EXPECT_EQ(Channels::note_seq(c, "p1", 2), 0u);
}

}  // namespace
}  // namespace wsedge::bridge
