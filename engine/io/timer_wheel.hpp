#pragma once
// A hashed timing wheel keyed by connection slot: one deadline per slot, O(1) to set, move or
// cancel, driven by the reactor's periodic tick. Deadlines further out than one revolution
// stay in their bucket and are skipped until their turn comes. Ticks are 32-bit and compared
// modulo 2^32, so the wheel runs forever; a deadline may be at most 2^31 ticks ahead.
#include <cstdint>
#include <vector>

namespace wsedge::io {

class TimerWheel {
 public:
  static constexpr std::uint32_t kNil = UINT32_MAX;
  static constexpr std::uint32_t kBuckets = 1024;  // power of two

  void grow(std::uint32_t slots) {
    if (slots > nodes_.size()) nodes_.resize(slots, Node{kUnlinked, kNil, 0});
  }
  // Sets the wheel's clock without walking the ticks before it. A wheel left at 0 and advanced
  // to the machine's tick count walked every tick since boot, and once that count passed 2^31
  // (248 days of uptime at 10 ms) it could not move at all: no timer ever fired again.
  void start(std::uint32_t now) { now_ = now; }
  // (Re)schedules `slot` to fire at tick `deadline` (clamped to the next tick if already due).
  void schedule(std::uint32_t slot, std::uint32_t deadline);
  void cancel(std::uint32_t slot);
  bool scheduled(std::uint32_t slot) const {
    return slot < nodes_.size() && nodes_[slot].prev != kUnlinked;
  }
  std::size_t size() const { return size_; }

  // Moves time to `now`, calling fire(slot) for each expired slot (already unlinked). fire may
  // schedule or cancel any slot, including the next one in the bucket being walked: the walk
  // follows next_ (kept valid by cancel), never a pointer read before fire ran.
  template <class Fn>
  void advance(std::uint32_t now, Fn&& fire) {
    while (before(now_, now)) {
      ++now_;
      std::uint32_t i = buckets_[now_ & (kBuckets - 1)];
      while (i != kNil) {
        next_ = nodes_[i].next;
        if (!before(now_, nodes_[i].deadline)) {
          cancel(i);
          fire(i);
        }
        i = next_;
      }
      next_ = kNil;
    }
  }

 private:
  // 12 bytes per connection slot: "not in any bucket" is a prev no slot index reaches.
  static constexpr std::uint32_t kUnlinked = UINT32_MAX - 1;
  struct Node {
    std::uint32_t prev, next;  // prev is kNil at a bucket's head
    std::uint32_t deadline;
  };
  std::vector<Node> nodes_;
  std::uint32_t buckets_[kBuckets] = {};
  std::uint32_t now_ = 0;
  std::uint32_t next_ = kNil;  // the node advance() visits next
  std::size_t size_ = 0;

  static bool before(std::uint32_t a, std::uint32_t b) {
    return static_cast<std::int32_t>(a - b) < 0;
  }

 public:
  TimerWheel() {
    for (auto& b : buckets_) b = kNil;
  }
};

inline void TimerWheel::schedule(std::uint32_t slot, std::uint32_t deadline) {
  if (nodes_[slot].prev != kUnlinked) cancel(slot);
  if (!before(now_, deadline)) deadline = now_ + 1;
  Node& n = nodes_[slot];
  std::uint32_t& head = buckets_[deadline & (kBuckets - 1)];
  n = Node{kNil, head, deadline};
  if (head != kNil) nodes_[head].prev = slot;
  head = slot;
  ++size_;
}

inline void TimerWheel::cancel(std::uint32_t slot) {
  Node& n = nodes_[slot];
  if (n.prev == kUnlinked) return;
  if (slot == next_) next_ = n.next;  // advance() must not walk into a node that left its bucket
  if (n.prev != kNil)
    nodes_[n.prev].next = n.next;
  else
    buckets_[n.deadline & (kBuckets - 1)] = n.next;
  if (n.next != kNil) nodes_[n.next].prev = n.prev;
  n.prev = kUnlinked;
  --size_;
}

}  // namespace wsedge::io
