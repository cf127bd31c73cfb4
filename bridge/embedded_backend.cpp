#include "embedded_backend.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <string_view>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "engine/log.hpp"
#include "protocol.hpp"

namespace wsedge::bridge {
namespace {

using Clock = std::chrono::steady_clock;
using Bytes = std::span<const std::byte>;

constexpr std::uint64_t kCountEvery = 64;                    // RECEIVED every 64 events (§5)...
constexpr auto kCountAfter = std::chrono::milliseconds(20);  // ...or 20 ms after an uncounted one
constexpr auto kIdlePoll = std::chrono::milliseconds(1000);  // nothing due: wake now and then
constexpr std::uint32_t kDefaultBeatMs = 5000;
constexpr std::size_t kMaxText = 4096;
constexpr int kHwm = 10000;

struct Conn {
  std::string name;
  std::string room;  // without the "room:" prefix of its channel
};

// One edge core, keyed by its routing id "<node>/<core>".
struct Edge {
  std::uint32_t epoch = 0;
  std::uint64_t taken = 0;     // OPEN, MESSAGE and CLOSE handled since the last WELCOME
  std::uint64_t reported = 0;  // the count the last RECEIVED carried
  Clock::time_point first_unreported;
  Clock::time_point heard;
  std::uint32_t interval_ms = kDefaultBeatMs;
  std::map<std::string, Conn> conns;  // by the 18 bytes of the connection id
};

Bytes bytes(const zmq::message_t& m) {
  return {static_cast<const std::byte*>(m.data()), m.size()};
}

// Room and nick names: 1-32 of [A-Za-z0-9_-], so they need no escaping anywhere.
bool valid_name(std::string_view s) {
  return !s.empty() && s.size() <= 32 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

// Text is valid UTF-8 already (wsedge validates text frames), so only quotes, backslashes and
// control characters need escaping for the result to be JSON.
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", c);
      out += esc;
    } else {
      out += ch;
    }
  }
  out += '"';
}

// A JSON object whose values are all strings.
std::string json(std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
  std::string out = "{";
  for (const auto& [key, value] : fields) {
    if (out.size() > 1) out += ',';
    append_json_string(out, key);
    out += ':';
    append_json_string(out, value);
  }
  return out + "}";
}

// "/join ROOM" and "/nick NAME": true when `text` is that command, with its argument in `arg`.
bool command(std::string_view text, std::string_view name, std::string_view& arg) {
  if (!text.starts_with(name)) return false;
  text.remove_prefix(name.size());
  if (!text.empty() && text[0] != ' ') return false;
  arg = text.empty() ? text : text.substr(1);
  return true;
}

// The room among a `channels` meta value (u8 length + name, repeated), if any.
std::optional<std::string> room_in(Bytes channels) {
  while (!channels.empty()) {
    auto len = static_cast<std::size_t>(channels[0]);
    if (channels.size() < 1 + len) return std::nullopt;
    std::string_view name(reinterpret_cast<const char*>(channels.data() + 1), len);
    if (name.starts_with("room:")) return std::string(name.substr(5));
    channels = channels.subspan(1 + len);
  }
  return std::nullopt;
}

}  // namespace

struct EmbeddedBackend::Server {
  Server(zmq::context_t& ctx, const std::string& router_endpoint,
         const std::string& publish_endpoint)
      : router(ctx, zmq::socket_type::router),
        pub(ctx, zmq::socket_type::pub),
        stop_rx(ctx, zmq::socket_type::pair),
        stop_tx(ctx, zmq::socket_type::pair) {
    std::random_device rd;
    instance = (std::uint64_t{rd()} << 32) | rd();
    char name[40];
    std::snprintf(name, sizeof name, "embedded-chat-%016llx",
                  static_cast<unsigned long long>(instance));
    publisher = name;
    for (zmq::socket_t* s : {&router, &pub}) {
      // Queues are bounded (§1); at shutdown nothing is worth waiting for, the edges go too.
      s->set(zmq::sockopt::sndhwm, kHwm);
      s->set(zmq::sockopt::rcvhwm, kHwm);
      s->set(zmq::sockopt::linger, 0);
      s->set(zmq::sockopt::heartbeat_ivl, 5000);
      s->set(zmq::sockopt::heartbeat_timeout, 15000);
      s->set(zmq::sockopt::heartbeat_ttl, 30000);
    }
    // A command for a core that is gone fails at once; a restarted core takes its id back (§1).
    router.set(zmq::sockopt::router_mandatory, 1);
    router.set(zmq::sockopt::router_handover, 1);
    router.bind(router_endpoint);
    pub.bind(publish_endpoint);
    // The stop signal: a PAIR per instance, so several backends in one context do not collide.
    std::string stop =
        "inproc://wsedge-embedded-stop-" + std::to_string(reinterpret_cast<std::uintptr_t>(this));
    stop_rx.set(zmq::sockopt::linger, 0);
    stop_tx.set(zmq::sockopt::linger, 0);
    stop_rx.bind(stop);
    stop_tx.connect(stop);
  }

  void run() {
    std::array<zmq::pollitem_t, 2> items{
        {{router.handle(), 0, ZMQ_POLLIN, 0}, {stop_rx.handle(), 0, ZMQ_POLLIN, 0}}};
    for (;;) {
      // Edges are peers, not trusted code, but a bug here must not end the whole server either:
      // whatever throws is logged and the loop goes on (a signal's EINTR from poll lands here).
      try {
        zmq::poll(items, poll_timeout());
        if (items[1].revents & ZMQ_POLLIN) return;
        if (items[0].revents & ZMQ_POLLIN) receive();
        tick();
      } catch (const std::exception& e) {
        if (const auto* z = dynamic_cast<const zmq::error_t*>(&e); z && z->num() == EINTR) continue;
        LOG_ERROR("embedded_backend_error", log::kv("error", e.what()));
      }
    }
  }

  // Until tick() has something to do: the oldest uncounted event turns 20 ms old, or a core
  // with connections reaches three beat intervals of silence.
  std::chrono::milliseconds poll_timeout() const {
    auto now = Clock::now();
    Clock::time_point next = now + kIdlePoll;
    for (const auto& [rid, edge] : edges) {
      if (edge.taken != edge.reported) next = std::min(next, edge.first_unreported + kCountAfter);
      if (!edge.conns.empty()) next = std::min(next, silent_at(edge));
    }
    return std::max(std::chrono::ceil<std::chrono::milliseconds>(next - now),
                    std::chrono::milliseconds(0));
  }

  static Clock::time_point silent_at(const Edge& edge) {
    return edge.heard + 3 * std::chrono::milliseconds(edge.interval_ms);
  }

  // RECEIVED for events waiting 20 ms; forgets the connections of cores silent for 3 beats.
  void tick() {
    auto now = Clock::now();
    for (auto& [rid, edge] : edges) {
      if (edge.taken != edge.reported && now - edge.first_unreported >= kCountAfter)
        report(rid, edge);
      if (!edge.conns.empty() && now >= silent_at(edge)) edge.conns.clear();
    }
  }

  void receive() {
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(router, std::back_inserter(frames), zmq::recv_flags::dontwait) ||
        frames.size() < 2)
      return;  // the ROUTER prepends the routing id, so there is always one more frame
    std::string rid = frames[0].to_string();
    Edge& edge = edges[rid];
    edge.heard = Clock::now();
    Header h;
    Bytes head = bytes(frames[1]);
    if (HeaderError e = decode_header(head, h); e != HeaderError::kOk) {
      // An unknown type still names its command's connection: the answer names it too.
      ConnId id = head.size() == kHeaderSize ? read_conn_id(head.data() + 6) : ConnId{};
      return fail(rid, id, error_code(e), "refused header");
    }
    dispatch(rid, edge, h, frames);
    // Counted once handled, refused or not: the edge must not resend what it can only repeat.
    if (h.type == Type::kOpen || h.type == Type::kMessage || h.type == Type::kClose ||
        h.type == Type::kClientPublish) {
      if (edge.taken++ == edge.reported) edge.first_unreported = Clock::now();
      if (edge.taken - edge.reported >= kCountEvery) report(rid, edge);
    }
  }

  void dispatch(const std::string& rid, Edge& edge, const Header& h,
                const std::vector<zmq::message_t>& frames) {
    if (static_cast<std::uint8_t>(h.type) & 0x80)  // down types, PUBLISH included (§4)
      return fail(rid, h.id, "unknown-type", "a backend does not take this type");
    bool payload =
        h.type == Type::kMessage || h.type == Type::kSnapshot || h.type == Type::kClientPublish;
    if (frames.size() != (payload ? 4u : 3u)) return fail(rid, h.id, "bad-frame", "frame count");
    Bytes meta = bytes(frames[2]);
    if (!valid_meta(meta)) return fail(rid, h.id, "bad-meta", "meta does not parse");
    std::string key(reinterpret_cast<const char*>(bytes(frames[1]).data() + 6), kConnIdSize);
    bool found = false;
    switch (h.type) {
      case Type::kHello: {
        Bytes versions = find_meta(meta, "versions", found);
        if (std::find(versions.begin(), versions.end(), std::byte{kVersion}) == versions.end())
          return fail(rid, h.id, "bad-version", "this backend speaks version 1 only");
        new_epoch(edge, h.id.epoch);
        edge.taken = edge.reported = 0;  // RECEIVED counts from this WELCOME
        std::byte buf[128];
        MetaWriter w(buf, sizeof buf);
        std::byte version{kVersion};
        w.add("version", Bytes(&version, 1)).add("backend", "embedded-chat");
        w.add_u64("instance", instance);
        to_edge(rid, Type::kWelcome, {}, w.bytes());
        return;
      }
      case Type::kBeat: {
        Bytes v = find_meta(meta, "interval", found);
        std::uint32_t ms = 0;
        if (found && (!read_u32(v, ms) || ms == 0))
          return fail(rid, h.id, "bad-meta", "interval is not a u32 of milliseconds");
        if (found) edge.interval_ms = ms;
        return new_epoch(edge, h.id.epoch);
      }
      case Type::kOpen: {
        if (edge.conns.contains(key)) return;  // a resent OPEN: set up already
        Conn& c = edge.conns[key];
        // A verified user (docs/AUTH.md) is called by name; anyone else is a numbered guest.
        Bytes sub = find_meta(meta, "sub", found);
        c.name = found && valid_name(as_text(sub)) ? std::string(as_text(sub))
                                                   : "guest-" + std::to_string(h.id.slot);
        // Re-announced (failover, resumed): the edge keeps its subscriptions, so its room too.
        if (auto room = room_in(find_meta(meta, "channels", found))) {
          c.room = *room;
          return;
        }
        return join(rid, h.id, c, "lobby");
      }
      case Type::kMessage:
        return message(rid, edge, h, key, frames[3].to_string_view());
      case Type::kClose:
        edge.conns.erase(key);
        return;
      case Type::kClientPublish:
        // A client's publish the edge's ACL allowed (control=on routes): fanned out as it is.
        return publish_channel(std::string(as_text(find_meta(meta, "channel", found))),
                               std::string(frames[3].to_string_view()));
      default:  // SNAPSHOT, ACK, ERROR: answers to what this backend never asks
        return;
    }
  }

  void message(const std::string& rid, Edge& edge, const Header& h, const std::string& key,
               std::string_view text) {
    auto it = edge.conns.find(key);
    if (it == edge.conns.end()) {
      // Forgotten while its core was silent but alive after all: start it over in the lobby.
      it = edge.conns.emplace(key, Conn{"guest-" + std::to_string(h.id.slot), ""}).first;
      join(rid, h.id, it->second, "lobby");
    }
    Conn& c = it->second;
    std::string_view arg;
    if (h.flags & flag::kBinary) return tell_error(rid, h.id, "binary messages are not understood");
    if (command(text, "/join", arg)) {
      if (!valid_name(arg)) return tell_error(rid, h.id, "a room is 1-32 of A-Z a-z 0-9 _ -");
      if (arg != c.room) join(rid, h.id, c, std::string(arg));
      return;
    }
    if (command(text, "/nick", arg)) {
      if (!valid_name(arg)) return tell_error(rid, h.id, "a name is 1-32 of A-Z a-z 0-9 _ -");
      say(c.room, c.name + " is now " + std::string(arg));
      c.name = arg;
      return tell(rid, h.id, c, "you are now " + c.name);
    }
    if (text.size() > kMaxText) return tell_error(rid, h.id, "messages are at most 4096 bytes");
    publish(c.room,
            json({{"type", "message"}, {"room", c.room}, {"from", c.name}, {"text", text}}));
  }

  // Moves a connection into `room`: out of its old one's channel, into the new one's. Only moves
  // are announced: arriving by connecting and leaving by closing are not, or every page load and
  // reconnect would say so to the whole lobby.
  void join(const std::string& rid, const ConnId& id, Conn& c, std::string room) {
    bool moving = !c.room.empty();
    if (moving) {
      say(c.room, c.name + " left for " + room);
      to_edge(rid, Type::kUnsubscribe, id, channels_meta(c.room));
    }
    c.room = std::move(room);
    to_edge(rid, Type::kSubscribe, id, channels_meta(c.room));
    tell(rid, id, c, "you are in room " + c.room + " as " + c.name + "; /nick NAME, /join ROOM");
    if (moving) say(c.room, c.name + " joined");
  }

  Bytes channels_meta(const std::string& room) {
    std::string channel = "room:" + room;
    std::string list = static_cast<char>(channel.size()) + channel;
    MetaWriter w(meta_buf, sizeof meta_buf);
    return w.add("channels", list).bytes();
  }

  // A system line to one connection, naming its room and name so a page can show both.
  void tell(const std::string& rid, const ConnId& id, const Conn& c, std::string_view text) {
    send_text(rid, id,
              json({{"type", "system"}, {"room", c.room}, {"name", c.name}, {"text", text}}));
  }
  void tell_error(const std::string& rid, const ConnId& id, std::string_view text) {
    send_text(rid, id, json({{"type", "error"}, {"text", text}}));
  }
  void send_text(const std::string& rid, const ConnId& id, const std::string& payload) {
    to_edge(rid, Type::kSend, id, {}, payload);
  }

  void new_epoch(Edge& edge, std::uint32_t epoch) {
    // A new epoch is a restarted node: none of the connections we knew there exist (§5.2).
    if (epoch != edge.epoch) edge.conns.clear();
    edge.epoch = epoch;
  }

  void report(const std::string& rid, Edge& edge) {
    std::byte buf[32];
    MetaWriter w(buf, sizeof buf);
    w.add_u64("count", edge.taken);
    if (to_edge(rid, Type::kReceived, {}, w.bytes())) edge.reported = edge.taken;
  }

  // Publishes a system line to a room.
  void say(const std::string& room, std::string_view text) {
    publish(room, json({{"type", "system"}, {"room", room}, {"text", text}}));
  }

  // Four frames on the PUB (§6): topic "room:R\0", header, meta, payload.
  void publish(const std::string& room, const std::string& payload) {
    publish_channel("room:" + room, payload);
  }
  void publish_channel(const std::string& channel, const std::string& payload) {
    std::string topic = channel + '\0';
    std::byte buf[256];
    MetaWriter w(buf, sizeof buf);
    w.add("channel", channel).add_u64("seq", ++seqs[channel]).add("publisher", publisher);
    auto head = encode_header({kVersion, Type::kPublish, 0, {}});
    std::array<zmq::const_buffer, 4> parts{zmq::buffer(topic), zmq::buffer(head),
                                           zmq::buffer(w.bytes().data(), w.bytes().size()),
                                           zmq::buffer(payload)};
    // A PUB drops at its high-water mark rather than block; the edges count the gap (§6).
    zmq::send_multipart(pub, parts, zmq::send_flags::dontwait);
  }

  // One message to an edge core. False when it could not go: the core is gone (ROUTER_MANDATORY)
  // or its queue is full. Chat lines are not worth blocking every other core for.
  bool to_edge(const std::string& rid, Type type, const ConnId& id, Bytes meta,
               std::optional<std::string_view> payload = std::nullopt) {
    auto head = encode_header({kVersion, type, 0, id});
    std::vector<zmq::const_buffer> parts{zmq::buffer(rid), zmq::buffer(head),
                                         zmq::buffer(meta.data(), meta.size())};
    if (payload) parts.push_back(zmq::buffer(*payload));
    try {
      return zmq::send_multipart(router, parts, zmq::send_flags::dontwait).has_value();
    } catch (const zmq::error_t&) {
      return false;
    }
  }

  void fail(const std::string& rid, const ConnId& id, std::string_view code,
            std::string_view reason) {
    std::byte buf[256];
    MetaWriter w(buf, sizeof buf);
    w.add("code", code).add("reason", reason);
    to_edge(rid, Type::kError, id, w.bytes());
  }

  zmq::socket_t router;
  zmq::socket_t pub;
  zmq::socket_t stop_rx;
  zmq::socket_t stop_tx;  // the one socket the owner's thread uses, in ~EmbeddedBackend
  std::uint64_t instance = 0;
  std::string publisher;                      // unique to this process (§6)
  std::map<std::string, std::uint64_t> seqs;  // per channel, from 1
  std::map<std::string, Edge> edges;
  std::byte meta_buf[64];  // channels_meta's result, valid until its next call
};

EmbeddedBackend::EmbeddedBackend(zmq::context_t& ctx, std::string router_endpoint,
                                 std::string publish_endpoint)
    : server_(std::make_unique<Server>(ctx, router_endpoint, publish_endpoint)),
      thread_([s = server_.get()] { s->run(); }) {}

EmbeddedBackend::~EmbeddedBackend() {
  server_->stop_tx.send(zmq::str_buffer("stop"), zmq::send_flags::none);
  thread_.join();
}

}  // namespace wsedge::bridge
