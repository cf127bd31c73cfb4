#pragma once
// The token expiries of one core's connections (docs/AUTH.md §5), earliest first, for a timer
// that closes what has expired. Bounded by the connections, not by what they do: a heap with an
// entry per expiry change grew with every `wsedge:refresh` a client sent (two tokens, taken in
// turn) and kept an entry for every connection ever opened until its token's exp (a client
// reconnecting with a day-long token). Here a connection has at most one entry that counts,
// recorded in its Identity::queued; a later exp waits behind it (its entry queues the new exp
// when it pops), and the entries of connections gone or superseded are swept once the heap has
// doubled since the last sweep.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "auth/gate.hpp"

namespace wsedge::auth {

template <class Id>
class Expiries {
 public:
  // Watches `who` (the connection `id`) for its exp (0: never). `find(id)` is the connection's
  // Identity, or null when it is gone: only a sweep calls it.
  template <class Find>
  void watch(Id id, Identity& who, Find&& find) {
    // An entry at or before exp is there already: when it pops, it queues this exp.
    if (!who.exp || (who.queued && who.queued <= who.exp)) return;
    if (heap_.size() >= sweep_at_) sweep(find);
    who.queued = who.exp;
    heap_.push_back({who.exp, id});
    std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
  }

  // Calls expired(id, who) for every connection whose exp is `now` or earlier.
  template <class Find, class Expired>
  void due(std::int64_t now, Find&& find, Expired&& expired) {
    while (!heap_.empty() && heap_.front().exp <= now) {
      std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
      Entry e = heap_.back();
      heap_.pop_back();
      Identity* who = find(e.id);
      // Gone, or an earlier entry replaced this one (the exp was shortened).
      if (!who || who->queued != e.exp) continue;
      who->queued = 0;
      if (who->exp > now)
        watch(e.id, *who, find);  // extended since: wait on
      else if (who->exp)
        expired(e.id, *who);
    }
  }

  std::size_t size() const { return heap_.size(); }

 private:
  struct Entry {
    std::int64_t exp;
    Id id;
    bool operator>(const Entry& o) const { return exp > o.exp; }
  };

  template <class Find>
  void sweep(Find&& find) {
    std::erase_if(heap_, [&](const Entry& e) {
      Identity* who = find(e.id);
      return !who || who->queued != e.exp;
    });
    std::make_heap(heap_.begin(), heap_.end(), std::greater<>());
    // Amortised: at least as many pushes as entries kept before the next sweep.
    sweep_at_ = std::max<std::size_t>(kMinSweep, 2 * heap_.size());
  }

  static constexpr std::size_t kMinSweep = 64;
  std::vector<Entry> heap_;
  std::size_t sweep_at_ = kMinSweep;
};

}  // namespace wsedge::auth
