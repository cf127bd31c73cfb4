// The bridge's use of auth/ (docs/AUTH.md): the identity checked at the upgrade and told to
// backends in OPEN, the ACL on every subscription and client publish, live ACL changes and
// expiry, and the client control protocol. Nothing here runs unless auth or an ACL is
// configured, except control() on routes that ask for it.
#include <algorithm>
#include <cstring>
#include <ctime>
#include <limits>

#include "edge.hpp"

namespace wsedge::bridge {
namespace {

constexpr std::string_view kControlPrefix = "wsedge:";
constexpr std::uint32_t kExpiryCheckMs = 1000;  // a token expires on time to the second
constexpr std::uint16_t kTokenExpired = 4401;
constexpr std::uint16_t kAccessRevoked = 4403;

// What a channel name may be where a client or a token gives it: what SUBSCRIBE's list format
// can carry (1-255 bytes, no NUL: the SUB topic ends with one), and no space (the control
// protocol's separator).
bool valid_channel(std::string_view ch) {
  return !ch.empty() && ch.size() <= 255 &&
         ch.find_first_of(std::string_view(" \0", 2)) == std::string_view::npos;
}

// At most `max` bytes of the valid UTF-8 `s`, cut before a character, never inside one: a
// reply that quoted a client's text cut inside a character would be invalid text, and the
// client fails the connection with 1007 (RFC 6455 §8.1).
std::string_view utf8_prefix(std::string_view s, std::size_t max) {
  if (s.size() <= max) return s;
  while (max > 0 && (static_cast<unsigned char>(s[max]) & 0xC0) == 0x80) --max;
  return s.substr(0, max);
}

bool read_names(std::span<const std::byte> meta, std::string_view key,
                std::vector<std::string>& out) {
  bool found = false;
  return for_each_name(find_meta(meta, key, found),
                       [&](std::string_view name) { out.emplace_back(name); });
}

}  // namespace

void Edge::start_auth() {
  if (!auth_opts_.enabled()) return;
  // main() built one Gate from the same options before any core started: a bad key or ACL
  // file stopped the server there, so this one loads.
  gate_ = std::make_unique<auth::Gate>(auth_opts_);
  expiry_timer_ = reactor_->schedule(kExpiryCheckMs, &Edge::expiry_timer, this);
}

std::unique_ptr<auth::Identity> Edge::authorize(const protocol::UpgradeRequest& req,
                                                std::string_view path, MetaWriter& w,
                                                ws::UpgradeDecision& out) {
  auto id = std::make_unique<auth::Identity>();
  auth::Claims claims;
  auth::Gate::Admission a = gate_->admit(req, path, std::time(nullptr), *id, claims);
  if (a.status != 101) {
    out = ws::UpgradeDecision::refuse(a.status, a.reason, a.headers);
    return nullptr;
  }
  if (!id->user.empty()) w.add("sub", id->user);
  std::vector<std::byte> list;
  for (const std::string& role : id->token_roles) append_name(list, role);
  if (!list.empty()) w.add("roles", list);
  if (id->exp) w.add_u64("exp", static_cast<std::uint64_t>(id->exp));
  if (!claims.info.empty()) w.add("info", claims.info);
  // The token's channels, where the ACL allows: subscribed at on_open, and told in OPEN.
  token_channels_.clear();
  list.clear();
  for (const std::string& ch : claims.channels) {
    if (token_channels_.size() >= opts_.max_channels_per_conn) break;
    if (!valid_channel(ch)) continue;
    if (!gate_->may(*id, ch, gate_->subscribe_perm())) {
      ++gate_->counters().denied_subscribe;
      continue;
    }
    token_channels_.push_back(ch);
    append_name(list, ch);
  }
  if (!list.empty()) w.add("channels", list);
  return id;
}

void Edge::start_identity(ws::Connection c) {
  for (const std::string& ch : token_channels_) subscribe(c.id(), ch, true);
  token_channels_.clear();
  if (auth::Identity* id = identity(c.id())) watch_expiry(c.id(), *id);
}

void Edge::access_fields(ws::Connection c, log::Fields& f) {
  // The id backends know the connection by: a log line and a backend's own logs meet on it.
  f.add(log::kv("conn", conn_id(c.id()).format(conn_text_)));
  if (ConnState* st = ep_->state(c)) f.add(log::kv("route", opts_.routes[st->route].path));
  if (auth::Identity* id = identity(c.id()); id && !id->user.empty())
    f.add(log::kv("user", id->user));
}

auth::Identity* Edge::identity(io::SocketId id) {
  if (!gate_ || id.idx >= identities_.size() || !ep_->is_current(id)) return nullptr;
  return identities_[id.idx].get();
}

bool Edge::may_subscribe(io::SocketId id, std::string_view channel) {
  if (!gate_ || !gate_->has_acl()) return true;
  auth::Identity* who = identity(id);
  // Every connection admitted while the gate exists has an identity: none is a bug, and
  // failing closed is the safe side of it.
  bool ok = who && gate_->may(*who, channel, gate_->subscribe_perm());
  if (!ok) ++gate_->counters().denied_subscribe;
  return ok;
}

bool Edge::control(ws::Connection c, std::string_view text) {
  if (!text.starts_with(kControlPrefix)) return false;
  text.remove_prefix(kControlPrefix.size());
  std::string_view verb = text.substr(0, text.find(' '));
  std::string_view arg = text.substr(std::min(text.size(), verb.size() + 1));
  std::string_view channel = arg.substr(0, arg.find(' '));
  auto reply = [&](std::string_view status, std::string_view detail) {
    char buf[512];
    std::size_t n = 0;
    for (std::string_view part :
         {kControlPrefix, status, std::string_view(" "), utf8_prefix(verb, 16),
          std::string_view(" "), utf8_prefix(detail, 300)}) {
      std::memcpy(buf + n, part.data(), part.size());
      n += part.size();
    }
    c.send_text({buf, n});
  };
  io::SocketId id = c.id();
  if (verb == "sub" || verb == "unsub") {
    if (!valid_channel(channel) || channel.size() != arg.size()) {
      reply("err", "bad-channel");
    } else if (verb == "unsub") {
      subscribe(id, channel, false);
      reply("ok", channel);
    } else if (channels_.count_of(id) >= opts_.max_channels_per_conn &&
               !channels_.has(id, channel)) {
      reply("err", "limit");
    } else if (!may_subscribe(id, channel)) {
      reply("err", std::string(channel).append(" denied"));
    } else {
      subscribe(id, channel, true);
      reply("ok", channel);
    }
    return true;
  }
  if (verb == "pub") {
    std::string_view payload = arg.substr(std::min(arg.size(), channel.size() + 1));
    auth::Identity* who = identity(id);
    if (!valid_channel(channel)) {
      reply("err", "bad-channel");
    } else if (gate_ && gate_->has_acl() &&
               !(who && gate_->may(*who, channel, gate_->publish_perm()))) {
      ++gate_->counters().denied_publish;
      reply("err", std::string(channel).append(" denied"));
    } else {
      Event e = event(Type::kClientPublish, 0, id);
      std::byte meta[300];
      MetaWriter w(meta, sizeof meta);
      w.add("channel", channel);
      e.meta.rebuild(w.bytes().data(), w.bytes().size());
      e.payload.rebuild(payload.data(), payload.size());
      push(ep_->state(c)->link, std::move(e), id);
    }
    return true;
  }
  if (verb == "refresh") {
    auth::Identity* who = identity(id);
    if (!who || gate_->options().mode == auth::Mode::kOff) {
      reply("err", "auth is off");
      return true;
    }
    auth::TokenError e = gate_->refresh(*who, arg, std::time(nullptr));
    if (e != auth::TokenError::kNone) {
      reply("err", auth::reason(e));
      return true;
    }
    watch_expiry(id, *who);
    reply("ok", std::to_string(who->exp));
    return true;
  }
  reply("err", "unknown-command");
  return true;
}

void Edge::command_acl(std::uint16_t li, const Header& h, std::span<const std::byte> meta,
                       std::span<const std::byte> seq) {
  auth::AclChange change;
  bool found = false;
  change.op = as_text(find_meta(meta, "op", found));
  change.user = as_text(find_meta(meta, "user", found));
  change.role = as_text(find_meta(meta, "role", found));
  if (!read_names(meta, "roles", change.roles) || !read_names(meta, "parents", change.parents) ||
      !read_names(meta, "resources", change.resources) ||
      !read_names(meta, "permissions", change.permissions)) {
    refuse_message(li, h.id, seq, "bad-meta", "lists: names of 1-255 bytes");
    return;
  }
  std::string error = "no ACL is configured (--acl)";
  if (!gate_ || !gate_->change(change, error)) {
    answer(li, Type::kError, h.id, seq, "bad-acl", std::string_view(error).substr(0, 300));
    return;
  }
  // Within this turn: what the change revokes stops before any other event is handled.
  recheck();
  if (h.flags & flag::kAck) answer(li, Type::kAck, h.id, seq);
}

bool Edge::command_expires(const Header& h, std::span<const std::byte> meta) {
  ws::Connection c = resolve(h.id);
  if (!c.open()) return false;
  bool found = false;
  std::uint64_t exp = 0;  // absent: never
  read_u64(find_meta(meta, "exp", found), exp);
  if (auth::Identity* id = identity(c.id())) {
    // A u64 past int64 (the Python library sends up to 2^64-1) would turn negative: in the
    // past, closing at once the connection it meant to keep for ever.
    id->exp = static_cast<std::int64_t>(
        std::min<std::uint64_t>(exp, std::numeric_limits<std::int64_t>::max()));
    watch_expiry(c.id(), *id);
  }
  return true;
}

void Edge::recheck() {
  std::vector<std::string> revoked;
  for_each_conn([&](ws::Connection c, ConnState& st) {
    auth::Identity* id = identity(c.id());
    if (!id || !c.open()) return;
    if (!gate_->may(*id, id->path, gate_->connect_perm())) {
      ++gate_->counters().revoked_closes;
      st.flags |= kClosedByEdge;
      c.close(kAccessRevoked, "access revoked");
      return;
    }
    revoked.clear();
    channels_.for_each_of(c.id(), [&](std::string_view ch) {
      if (!gate_->may(*id, ch, gate_->subscribe_perm())) revoked.emplace_back(ch);
    });
    for (const std::string& ch : revoked) subscribe(c.id(), ch, false);
    gate_->counters().revoked_subscriptions += revoked.size();
  });
}

void Edge::watch_expiry(io::SocketId id, auth::Identity& who) {
  expiries_.watch(id, who, [this](io::SocketId i) { return identity(i); });
}

void Edge::expiry_timer(void* self_ptr, io::Reactor& r) {
  auto* self = static_cast<Edge*>(self_ptr);
  self->expiries_.due(
      std::time(nullptr), [self](io::SocketId i) { return self->identity(i); },
      [self](io::SocketId id, auth::Identity&) {
        if (!self->ep_->is_open(id)) return;  // closing already
        ++self->gate_->counters().expired_closes;
        ws::Connection c{self->ep_, id};
        self->ep_->state(c)->flags |= kClosedByEdge;
        c.close(kTokenExpired, "token expired");
      });
  self->expiry_timer_ = r.schedule(kExpiryCheckMs, &Edge::expiry_timer, self);
}

void Edge::on_reload() {
  if (!gate_) return;
  // One snapshot for the whole reload: the options are taken once, then loaded all or nothing.
  gate_->reload(auth_source_ ? *auth_source_() : gate_->options());
  recheck();
}

}  // namespace wsedge::bridge
