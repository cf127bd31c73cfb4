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

TEST(TimerWheel, TickCounterWrapsAround) {
  TimerWheel w;
  w.grow(1);
  advance(w, UINT32_MAX - 5);
  w.schedule(0, 10);  // 16 ticks ahead, past the wrap
  EXPECT_TRUE(advance(w, 9).empty());
  EXPECT_EQ(advance(w, 10), std::vector<std::uint32_t>{0});
}

}  // namespace
}  // namespace wsedge::io
