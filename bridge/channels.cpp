#include "channels.hpp"

#include <algorithm>

namespace wsedge::bridge {

Channels::Change Channels::subscribe(io::SocketId id, std::string_view channel) {
  auto it = index_.find(channel);
  std::uint32_t ci;
  bool created = it == index_.end();
  if (created) {
    if (free_.empty()) {
      ci = static_cast<std::uint32_t>(channels_.size());
      channels_.emplace_back();
    } else {
      ci = free_.back();
      free_.pop_back();
    }
    channels_[ci].name.assign(channel);
    index_.emplace(channels_[ci].name, ci);
  } else {
    ci = it->second;
  }
  if (by_conn_.size() <= id.idx) by_conn_.resize(id.idx + 1);
  std::vector<Mine>& mine = by_conn_[id.idx];
  for (const Mine& m : mine) {
    if (m.channel == ci) return Change::kNone;
  }
  Channel& c = channels_[ci];
  mine.push_back({ci, static_cast<std::uint32_t>(c.subs.size())});
  c.subs.push_back({id, static_cast<std::uint32_t>(mine.size() - 1)});
  ++subscriptions_;
  return created ? Change::kFirst : Change::kNone;
}

Channels::Change Channels::unsubscribe(io::SocketId id, std::string_view channel) {
  auto it = index_.find(channel);
  if (it == index_.end() || id.idx >= by_conn_.size()) return Change::kNone;
  std::vector<Mine>& mine = by_conn_[id.idx];
  for (std::size_t i = 0; i < mine.size(); ++i) {
    if (mine[i].channel == it->second) return remove(id, i);
  }
  return Change::kNone;
}

// Both lists drop the pair by moving their last entry into its place; the moved entry's
// partner is told its new index, so neither list is ever searched.
Channels::Change Channels::remove(io::SocketId id, std::size_t mine_index) {
  std::vector<Mine>& mine = by_conn_[id.idx];
  Mine gone = mine[mine_index];
  Channel& c = channels_[gone.channel];

  Subscriber moved_sub = c.subs.back();
  c.subs[gone.pos] = moved_sub;
  c.subs.pop_back();
  if (gone.pos < c.subs.size()) by_conn_[moved_sub.id.idx][moved_sub.back].pos = gone.pos;

  Mine moved_mine = mine.back();
  mine[mine_index] = moved_mine;
  mine.pop_back();
  if (mine_index < mine.size())
    channels_[moved_mine.channel].subs[moved_mine.pos].back =
        static_cast<std::uint32_t>(mine_index);
  // A connection's list gives its memory back with its last channel: closed connections leave
  // nothing behind in a table indexed by slot.
  if (mine.empty()) mine.shrink_to_fit();
  --subscriptions_;

  if (!c.subs.empty()) return Change::kNone;
  index_.erase(c.name);
  c.subs.shrink_to_fit();
  c.sources.clear();
  c.name.clear();
  free_.push_back(gone.channel);
  return Change::kLast;
}

bool Channels::has(io::SocketId id, std::string_view channel) const {
  auto it = index_.find(channel);
  if (it == index_.end() || id.idx >= by_conn_.size()) return false;
  const std::vector<Mine>& mine = by_conn_[id.idx];
  return std::any_of(mine.begin(), mine.end(),
                     [&](const Mine& m) { return m.channel == it->second; });
}

Channels::Channel* Channels::find(std::string_view channel) {
  auto it = index_.find(channel);
  return it == index_.end() ? nullptr : &channels_[it->second];
}

std::uint64_t Channels::note_seq(Channel& c, std::string_view publisher, std::uint64_t seq) {
  for (Source& s : c.sources) {
    if (s.publisher != publisher) continue;
    std::uint64_t skipped = seq > s.last + 1 ? seq - s.last - 1 : 0;
    s.last = seq;
    return skipped;
  }
  // The first message heard from a publisher: whatever came before this core subscribed is
  // not a loss.
  c.sources.push_back({std::string(publisher), seq});
  return 0;
}

}  // namespace wsedge::bridge
