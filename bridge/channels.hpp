#pragma once
// One core's subscription table (docs/BRIDGE-PROTOCOL.md §6): which of its connections hear
// which channels, both ways, so a publish finds its subscribers without a search and a closing
// connection leaves every channel without one. Each (connection, channel) pair costs one
// 16-byte entry in the channel's list and one 8-byte entry in the connection's (48 bytes at
// most with vector slack; the limit is 64). No sockets: the bridge sets ZeroMQ filters when
// a channel gains its first subscriber or loses its last.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/io/reactor.hpp"

namespace wsedge::bridge {

class Channels {
 public:
  struct Subscriber {
    io::SocketId id;
    std::uint32_t back;  // index of this pair in the connection's list
  };
  // The last sequence number seen from one publisher: a jump is messages lost upstream.
  struct Source {
    std::string publisher;
    std::uint64_t last = 0;
  };
  struct Channel {
    std::string name;
    std::vector<Subscriber> subs;
    std::vector<Source> sources;
  };
  enum class Change : std::uint8_t {
    kNone,   // nothing to tell ZeroMQ (already subscribed, or not subscribed)
    kFirst,  // the channel's first subscriber on this core: set the SUB filter
    kLast,   // its last one left: drop the filter
  };

  Change subscribe(io::SocketId id, std::string_view channel);
  Change unsubscribe(io::SocketId id, std::string_view channel);
  // Every channel of a closing connection; on_last(name) for each that has no subscriber left.
  template <class Fn>
  void unsubscribe_all(io::SocketId id, Fn&& on_last);

  Channel* find(std::string_view channel);
  // The channels a connection is subscribed to, in no particular order.
  template <class Fn>
  void for_each_of(io::SocketId id, Fn&& fn) const;
  // Whether the connection is subscribed to the channel (a scan of its own list).
  bool has(io::SocketId id, std::string_view channel) const;
  std::size_t count_of(io::SocketId id) const {
    return id.idx < by_conn_.size() ? by_conn_[id.idx].size() : 0;
  }
  std::size_t channel_count() const { return index_.size(); }
  std::size_t subscription_count() const { return subscriptions_; }

  // Records `seq` from `publisher`; returns how many messages were skipped before it (0 in
  // order; a publisher that restarted, seq 1 or back, starts afresh and skips none).
  static std::uint64_t note_seq(Channel& c, std::string_view publisher, std::uint64_t seq);

 private:
  struct Mine {
    std::uint32_t channel;
    std::uint32_t pos;  // index in the channel's subscriber list
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  Change remove(io::SocketId id, std::size_t mine_index);
  // The bound is 64 bytes per (connection, channel): both entries, even with each
  // vector at twice its size.
  static_assert(2 * (sizeof(Subscriber) + sizeof(Mine)) <= 64);

  std::vector<Channel> channels_;  // by index; freed ones are listed in free_
  std::vector<std::uint32_t> free_;
  std::vector<std::vector<Mine>> by_conn_;  // by connection slot
  std::unordered_map<std::string, std::uint32_t, Hash, std::equal_to<>> index_;
  std::size_t subscriptions_ = 0;
};

template <class Fn>
void Channels::unsubscribe_all(io::SocketId id, Fn&& on_last) {
  if (id.idx >= by_conn_.size()) return;
  std::vector<Mine>& mine = by_conn_[id.idx];
  while (!mine.empty()) {
    std::string name = channels_[mine.back().channel].name;
    if (remove(id, mine.size() - 1) == Change::kLast) on_last(std::string_view(name));
  }
}

template <class Fn>
void Channels::for_each_of(io::SocketId id, Fn&& fn) const {
  if (id.idx >= by_conn_.size()) return;
  for (const Mine& m : by_conn_[id.idx]) fn(std::string_view(channels_[m.channel].name));
}

}  // namespace wsedge::bridge
