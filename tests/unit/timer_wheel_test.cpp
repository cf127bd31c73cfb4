#include "engine/io/timer_wheel.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace wsedge::io {
namespace {

std::vector<std::uint32_t> advance(TimerWheel& w, std::uint32_t to) {
  std::vector<std::uint32_t> fired;
  w.advance(to, [&](std::uint32_t s) { fired.push_back(s); });
  return fired;
}

TEST(TimerWheel, FiresAtTheDeadline) {
  TimerWheel w;
  w.grow(4);
  w.schedule(0, 5);
  w.schedule(1, 3);
  EXPECT_TRUE(advance(w, 2).empty());
  EXPECT_EQ(advance(w, 3), std::vector<std::uint32_t>{1});
  EXPECT_EQ(advance(w, 10), std::vector<std::uint32_t>{0});
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, RescheduleAndCancel) {
  TimerWheel w;
  w.grow(3);
  w.schedule(0, 5);
  w.schedule(0, 8);  // moved, not duplicated
  w.schedule(1, 6);
  w.cancel(1);
  EXPECT_TRUE(advance(w, 7).empty());
  EXPECT_EQ(advance(w, 8), std::vector<std::uint32_t>{0});
  EXPECT_FALSE(w.scheduled(0));
}

TEST(TimerWheel, DeadlinesBeyondOneRevolution) {
  TimerWheel w;
  w.grow(2);
  w.schedule(0, TimerWheel::kBuckets * 3 + 7);
  EXPECT_TRUE(advance(w, TimerWheel::kBuckets * 3 + 6).empty());
  EXPECT_EQ(advance(w, TimerWheel::kBuckets * 3 + 7), std::vector<std::uint32_t>{0});
}

TEST(TimerWheel, PastDeadlineFiresOnTheNextTick) {
  TimerWheel w;
  w.grow(1);
  advance(w, 100);
  w.schedule(0, 50);
  EXPECT_EQ(advance(w, 101), std::vector<std::uint32_t>{0});
}

TEST(TimerWheel, StartsAtAnyTickCount) {
  // A machine up 248 days has counted 2^31 ticks of 10 ms: a wheel advanced there from 0 never
  // moved, so no timer fired again.
  for (std::uint32_t now : {0x80000100u, 0xFFFFFF00u, 12345u}) {
    TimerWheel w;
    w.grow(1);
    w.start(now);
    w.schedule(0, now + 3);
    EXPECT_TRUE(advance(w, now + 2).empty()) << now;
    EXPECT_EQ(advance(w, now + 3), std::vector<std::uint32_t>{0}) << now;
  }
}

TEST(TimerWheel, TickCounterWrapsAround) {
  TimerWheel w;
  w.grow(1);
  w.start(UINT32_MAX - 5);
  w.schedule(0, 10);  // 16 ticks ahead, past the wrap
  EXPECT_TRUE(advance(w, 9).empty());
  EXPECT_EQ(advance(w, 10), std::vector<std::uint32_t>{0});
}

}  // namespace
}  // namespace wsedge::io

namespace wsedge::io {
namespace {

TEST(TimerWheel, AFiredSlotMayCancelOrRescheduleTheNextOneInItsBucket) {
  // Three slots due at the same tick share a bucket; the first to fire cancels one and moves
  // the other a revolution later (the same bucket). Before the walk followed a pointer read
  // before fire ran, the cancelled and the moved slot fired anyway.
  for (int victim_moves = 0; victim_moves < 2; ++victim_moves) {
    TimerWheel w;
    w.grow(3);
    for (std::uint32_t s = 0; s < 3; ++s) w.schedule(s, 5);
    std::vector<std::uint32_t> fired;
    w.advance(5, [&](std::uint32_t s) {
      fired.push_back(s);
      if (fired.size() > 1) return;
      for (std::uint32_t o = 0; o < 3; ++o) {
        if (o == s) continue;
        if (victim_moves && o == (s + 1) % 3)
          w.schedule(o, 5 + TimerWheel::kBuckets);
        else
          w.cancel(o);
      }
    });
    EXPECT_EQ(fired.size(), 1u);
    EXPECT_EQ(w.size(), victim_moves ? 1u : 0u);
  }
}

}  // namespace
}  // namespace wsedge::io
