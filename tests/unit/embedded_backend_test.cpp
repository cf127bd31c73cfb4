// The embedded chat backend driven by a fake edge core: a DEALER and a SUB on the backend's own
// context, speaking the bridge protocol (docs/BRIDGE-PROTOCOL.md) as bridge/edge.* will.
#include "bridge/embedded_backend.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "bridge/protocol.hpp"

namespace wsedge::bridge {
namespace {

using namespace std::chrono_literals;
using Bytes = std::span<const std::byte>;

constexpr auto kReceived = static_cast<std::uint8_t>(Type::kReceived);
const ConnId kCore{0x1A2B3C4D, 0x6560F1A0, 0, 0, 0};
const ConnId kConnA{0x1A2B3C4D, 0x6560F1A0, 0, 7, 1};

// One message from the backend, decoded by hand so that types the codec does not know yet
// (RECEIVED) can be read too.
struct Reply {
  std::uint8_t type = 0;
  ConnId id;
  std::string meta;
  std::optional<std::string> payload;

  std::string value(std::string_view key) const {
    bool found = false;
    Bytes v = find_meta(std::as_bytes(std::span(meta.data(), meta.size())), key, found);
    EXPECT_TRUE(found) << key;
    return {reinterpret_cast<const char*>(v.data()), v.size()};
  }
  std::uint64_t u64(std::string_view key) const {
    std::string v = value(key);
    std::uint64_t out = 0;
    EXPECT_TRUE(read_u64(std::as_bytes(std::span(v.data(), v.size())), out)) << key;
    return out;
  }
};

std::string meta_of(auto&& fn) {
  std::byte buf[512];
  MetaWriter w(buf, sizeof buf);
  fn(w);
  EXPECT_TRUE(w.ok());
  return {reinterpret_cast<const char*>(w.bytes().data()), w.bytes().size()};
}

std::string header(Type t, ConnId id, std::uint16_t flags = 0) {
  auto h = encode_header({kVersion, t, flags, id});
  return {reinterpret_cast<const char*>(h.data()), h.size()};
}

class EmbeddedBackendTest : public ::testing::Test {
 protected:
  EmbeddedBackendTest()
      : backend_(ctx_, EmbeddedBackend::kRouterEndpoint, EmbeddedBackend::kPublishEndpoint),
        dealer_(ctx_, zmq::socket_type::dealer),
        sub_(ctx_, zmq::socket_type::sub) {
    dealer_.set(zmq::sockopt::routing_id, "testnode/0");
    dealer_.set(zmq::sockopt::linger, 0);
    sub_.set(zmq::sockopt::linger, 0);
    dealer_.connect(EmbeddedBackend::kRouterEndpoint);
    sub_.connect(EmbeddedBackend::kPublishEndpoint);
  }

  void send(std::vector<std::string> frames) {
    std::vector<zmq::const_buffer> parts;
    for (const auto& f : frames) parts.push_back(zmq::buffer(f));
    ASSERT_TRUE(zmq::send_multipart(dealer_, parts));
  }

  // The next message on `s` within 2 s.
  std::optional<std::vector<std::string>> receive(zmq::socket_t& s) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, 2000ms) == 0) return std::nullopt;
    std::vector<zmq::message_t> msgs;
    if (!zmq::recv_multipart(s, std::back_inserter(msgs))) return std::nullopt;
    std::vector<std::string> out;
    for (const auto& m : msgs) out.push_back(m.to_string());
    return out;
  }

  static std::optional<Reply> decode(const std::vector<std::string>& f) {
    if (f.size() < 2 || f[0].size() != kHeaderSize || f[0].substr(0, 3) != "WE\x01") return {};
    Reply r;
    r.type = static_cast<std::uint8_t>(f[0][3]);
    r.id = read_conn_id(reinterpret_cast<const std::byte*>(f[0].data() + 6));
    r.meta = f[1];
    if (f.size() > 2) r.payload = f[2];
    return r;
  }

  // The next reply on the DEALER that is not RECEIVED (those are counted in last_count_).
  std::optional<Reply> next() {
    for (;;) {
      auto frames = receive(dealer_);
      if (!frames) return std::nullopt;
      auto r = decode(*frames);
      if (!r || r->type != kReceived) return r;
      last_count_ = r->u64("count");
    }
  }

  // Reads the DEALER until a RECEIVED says `count` (within 2 s); other replies are skipped.
  bool wait_count(std::uint64_t count) {
    auto deadline = std::chrono::steady_clock::now() + 2s;
    while (last_count_ < count && std::chrono::steady_clock::now() < deadline) {
      auto frames = receive(dealer_);
      if (!frames) break;
      auto r = decode(*frames);
      if (!r || r->type != kReceived) continue;
      EXPECT_GE(r->u64("count"), last_count_) << "counts only grow";
      last_count_ = r->u64("count");
    }
    return last_count_ == count;
  }

  // The next publish on the SUB: its topic and the message after it.
  std::optional<std::pair<std::string, Reply>> next_publish() {
    auto frames = receive(sub_);
    if (!frames || frames->size() != 4) return std::nullopt;
    auto r = decode({frames->begin() + 1, frames->end()});
    if (!r) return std::nullopt;
    return std::pair{(*frames)[0], *r};
  }

  void subscribe(const std::string& channel) {
    sub_.set(zmq::sockopt::subscribe, channel + '\0');
    // Subscriptions reach a PUB asynchronously (§6): give this one time to get there.
    std::this_thread::sleep_for(50ms);
  }

  void hello() {
    send({header(Type::kHello, kCore), meta_of([](MetaWriter& w) {
            std::byte v{kVersion};
            w.add("versions", Bytes(&v, 1)).add("node", "testnode").add_u16("cores", 1);
          })});
    auto r = next();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->type, static_cast<std::uint8_t>(Type::kWelcome));
    EXPECT_EQ(r->value("version"), "\x01");
    EXPECT_EQ(r->value("backend"), "embedded-chat");
    EXPECT_EQ(r->value("instance").size(), 8u);
  }

  void open(ConnId id) {
    send({header(Type::kOpen, id), meta_of([](MetaWriter& w) { w.add("path", "/"); })});
  }
  void text(ConnId id, std::string_view s) {
    send({header(Type::kMessage, id), "", std::string(s)});
  }

  void expect_channels(Type t, ConnId id, std::string_view channel) {
    auto r = next();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->type, static_cast<std::uint8_t>(t));
    EXPECT_EQ(r->id, id);
    EXPECT_EQ(r->value("channels"), static_cast<char>(channel.size()) + std::string(channel));
  }

  // The next SEND to `id`; returns its payload.
  std::string expect_send(ConnId id) {
    auto r = next();
    EXPECT_TRUE(r);
    if (!r) return {};
    EXPECT_EQ(r->type, static_cast<std::uint8_t>(Type::kSend));
    EXPECT_EQ(r->id, id);
    return r->payload.value_or("");
  }

  void expect_error(std::string_view code) {
    auto r = next();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->type, static_cast<std::uint8_t>(Type::kError));
    EXPECT_EQ(r->value("code"), code);
  }

  zmq::context_t ctx_;
  EmbeddedBackend backend_;
  zmq::socket_t dealer_;
  zmq::socket_t sub_;
  std::uint64_t last_count_ = 0;
};

TEST_F(EmbeddedBackendTest, ChatsInRooms) {
  hello();
  subscribe("room:lobby");
  open(kConnA);
  expect_channels(Type::kSubscribe, kConnA, "room:lobby");
  EXPECT_EQ(expect_send(kConnA),
            R"({"type":"system","room":"lobby","name":"guest-7","text":"you are in room lobby as )"
            R"(guest-7; /nick NAME, /join ROOM"})");

  text(kConnA, "hi");
  auto p = next_publish();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->first, std::string("room:lobby\0", 11));
  EXPECT_EQ(p->second.type, static_cast<std::uint8_t>(Type::kPublish));
  EXPECT_EQ(p->second.id, ConnId{});
  EXPECT_EQ(p->second.value("channel"), "room:lobby");
  EXPECT_EQ(p->second.u64("seq"), 1u);
  EXPECT_TRUE(p->second.value("publisher").starts_with("embedded-chat-"));
  EXPECT_EQ(p->second.payload, R"({"type":"message","room":"lobby","from":"guest-7","text":"hi"})");

  // Quotes, backslashes and control characters are escaped; UTF-8 passes as it is.
  text(kConnA, "/nick ann");
  p = next_publish();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->second.payload, R"({"type":"system","room":"lobby","text":"guest-7 is now ann"})");
  EXPECT_EQ(expect_send(kConnA),
            R"({"type":"system","room":"lobby","name":"ann","text":"you are now ann"})");
  text(kConnA, "a \"q\" \\ \n\x01 \xc3\xa9");
  p = next_publish();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->second.u64("seq"), 3u);
  EXPECT_EQ(p->second.payload,
            "{\"type\":\"message\",\"room\":\"lobby\",\"from\":\"ann\",\"text\":\"a \\\"q\\\" \\\\ "
            "\\u000a\\u0001 \xc3\xa9\"}");

  text(kConnA, "/join x");
  p = next_publish();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->second.payload, R"({"type":"system","room":"lobby","text":"ann left for x"})");
  expect_channels(Type::kUnsubscribe, kConnA, "room:lobby");
  expect_channels(Type::kSubscribe, kConnA, "room:x");
  EXPECT_EQ(expect_send(kConnA),
            R"({"type":"system","room":"x","name":"ann","text":"you are in room x as ann; )"
            R"(/nick NAME, /join ROOM"})");

  // Refused input gets an error line, and nothing is published.
  text(kConnA, "/join bad room!");
  EXPECT_EQ(expect_send(kConnA), R"({"type":"error","text":"a room is 1-32 of A-Z a-z 0-9 _ -"})");
  send({header(Type::kMessage, kConnA, flag::kBinary), "", "\x01\x02"});
  EXPECT_EQ(expect_send(kConnA), R"({"type":"error","text":"binary messages are not understood"})");
  text(kConnA, std::string(4097, 'x'));
  EXPECT_EQ(expect_send(kConnA), R"({"type":"error","text":"messages are at most 4096 bytes"})");

  // OPEN, seven MESSAGEs and a CLOSE: nine events counted since the WELCOME, the last ones by
  // the 20 ms timer since no 64 came.
  send({header(Type::kClose, kConnA), meta_of([](MetaWriter& w) { w.add_u16("code", 1000); })});
  EXPECT_TRUE(wait_count(9)) << last_count_;
}

TEST_F(EmbeddedBackendTest, CountsEvery64Events) {
  hello();
  open(kConnA);
  for (int i = 0; i < 63; ++i) text(kConnA, "hi");
  EXPECT_TRUE(wait_count(64)) << last_count_;
  // A new WELCOME starts the count again (§5).
  hello();
  text(kConnA, "hi");
  last_count_ = 0;
  EXPECT_TRUE(wait_count(1)) << last_count_;
}

// A core silent for three beat intervals, or back with a new epoch, has lost its connections:
// a message from one the backend forgot starts it over in the lobby.
TEST_F(EmbeddedBackendTest, ForgetsConnectionsOfSilentOrRestartedCores) {
  hello();
  send({header(Type::kBeat, kCore),
        meta_of([](MetaWriter& w) { w.add_u32("connections", 0).add_u32("interval", 10); })});
  open(kConnA);
  expect_channels(Type::kSubscribe, kConnA, "room:lobby");
  expect_send(kConnA);
  text(kConnA, "/join x");
  expect_channels(Type::kUnsubscribe, kConnA, "room:lobby");
  expect_channels(Type::kSubscribe, kConnA, "room:x");
  expect_send(kConnA);
  std::this_thread::sleep_for(100ms);
  text(kConnA, "hi");
  expect_channels(Type::kSubscribe, kConnA, "room:lobby");
  expect_send(kConnA);

  text(kConnA, "/join y");
  expect_channels(Type::kUnsubscribe, kConnA, "room:lobby");
  expect_channels(Type::kSubscribe, kConnA, "room:y");
  expect_send(kConnA);
  ConnId restarted = kCore;
  ++restarted.epoch;
  send({header(Type::kBeat, restarted), ""});
  text(kConnA, "hi");
  expect_channels(Type::kSubscribe, kConnA, "room:lobby");
  expect_send(kConnA);

  // Re-announced with its channels (resumed, failover): it is in that room already.
  const ConnId b{kCore.node, kCore.epoch + 1, 0, 8, 1};
  send({header(Type::kOpen, b), meta_of([](MetaWriter& w) {
          w.add("channels", std::string("\x06room:z", 7)).add("resumed", "");
        })});
  text(b, "/join w");
  expect_channels(Type::kUnsubscribe, b, "room:z");
}

TEST_F(EmbeddedBackendTest, RefusesWhatItCannotTake) {
  hello();
  std::string unknown = header(Type::kOpen, kConnA);
  unknown[3] = '\x7f';
  send({unknown, ""});
  expect_error("unknown-type");
  send({header(Type::kPublish, {}), ""});  // publishes travel on PUB/SUB only
  expect_error("unknown-type");
  send({"WE\x01", ""});
  expect_error("bad-frame");
  send({header(Type::kOpen, kConnA)});  // meta frame missing
  expect_error("bad-frame");
  send({header(Type::kOpen, kConnA),
        "\x03"
        "ab"});  // a key of 3 bytes with 2 there
  expect_error("bad-meta");
  send({header(Type::kBeat, kCore), meta_of([](MetaWriter& w) { w.add_u16("interval", 5); })});
  expect_error("bad-meta");
  send({header(Type::kHello, kCore), meta_of([](MetaWriter& w) { w.add("versions", "\x02"); })});
  expect_error("bad-version");
  // Still serving after all that.
  hello();
}

}  // namespace
}  // namespace wsedge::bridge
