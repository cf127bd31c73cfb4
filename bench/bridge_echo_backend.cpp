// bridge_echo_backend: the bench's backend for `wsedge --app bridge` (docs/BRIDGE-PROTOCOL.md).
//
//   bridge_echo_backend --router ENDPOINT                      # echo: every MESSAGE back as SEND
//   bridge_echo_backend --router ENDPOINT --publish ENDPOINT   # fan-out (see below)
//
// Echo: HELLO -> WELCOME (with `instance`), MESSAGE -> SEND of the same payload with the same
// flags, RECEIVED every 64 events (count = events taken since the WELCOME), BEAT ignored.
// Fan-out: every OPEN is answered SUBSCRIBE "bench" and then a SEND of the text "ready" (sent
// only once the XPUB has seen the edge's subscription to "bench\0", so a client that has its
// "ready" is sure to get every later publish); every MESSAGE is published, payload and flags
// as they came, on channel "bench" (four frames: topic "bench\0", PUBLISH header, meta
// channel/seq/publisher, payload) and not echoed; so is a client publish (the edge's PUBLISH
// 0x14, from `wsedge:pub CHANNEL PAYLOAD` on a control=on route, which the edge's ACL checks).
// wsload's fanout mode sends those triggers from one connection and counts the deliveries on
// all of them, a closed loop that runs as fast as the server can deliver.
//
// One thread, no allocation per message beyond libzmq's own; the same ROUTER options as the
// embedded backend.
#include <signal.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <span>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "bridge/protocol.hpp"

namespace {

using namespace wsedge::bridge;
using Bytes = std::span<const std::byte>;

constexpr std::uint64_t kCountEvery = 64;
constexpr int kHwm = 100000;

Bytes bytes(const zmq::message_t& m) {
  return {static_cast<const std::byte*>(m.data()), m.size()};
}

volatile sig_atomic_t stopping = 0;
void on_signal(int) {
  stopping = 1;
}

struct EdgeState {
  std::uint64_t taken = 0, reported = 0;
};

class Backend {
 public:
  Backend(zmq::context_t& ctx, const std::string& router_ep, const std::string& pub_ep)
      : router_(ctx, zmq::socket_type::router),
        pub_(ctx, zmq::socket_type::xpub),
        fanout_(!pub_ep.empty()) {
    std::random_device rd;
    instance_ = (std::uint64_t{rd()} << 32) | rd();
    publisher_ = "bench-" + std::to_string(instance_);
    for (zmq::socket_t* s : {&router_, &pub_}) {
      s->set(zmq::sockopt::sndhwm, kHwm);
      s->set(zmq::sockopt::rcvhwm, kHwm);
      s->set(zmq::sockopt::linger, 0);
    }
    router_.set(zmq::sockopt::router_mandatory, 1);
    router_.set(zmq::sockopt::router_handover, 1);
    router_.bind(router_ep);
    if (fanout_) pub_.bind(pub_ep);
  }

  void run() {
    std::array<zmq::pollitem_t, 2> items{
        {{router_.handle(), 0, ZMQ_POLLIN, 0}, {pub_.handle(), 0, ZMQ_POLLIN, 0}}};
    while (!stopping) {
      try {
        zmq::poll(items.data(), fanout_ ? 2 : 1, std::chrono::milliseconds(100));
        // Drain what is there, then report what is left uncounted: at most 64 events late.
        for (int i = 0; i < 256 && receive(); ++i) {
        }
        if (fanout_) watch_subscriptions();
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) std::fprintf(stderr, "bridge_echo_backend: %s\n", e.what());
      }
    }
  }

 private:
  bool receive() {
    frames_.clear();
    for (;;) {
      zmq::message_t m;
      if (!router_.recv(m, zmq::recv_flags::dontwait)) {
        if (frames_.empty()) return false;
        continue;  // the rest of a multipart message is always there once its first part is
      }
      bool more = m.more();
      frames_.push_back(std::move(m));
      if (!more) break;
    }
    if (frames_.size() < 3) return true;
    Header h;
    if (decode_header(bytes(frames_[1]), h) != HeaderError::kOk) return true;
    std::string_view rid = frames_[0].to_string_view();
    auto it = edges_.find(rid);
    if (it == edges_.end()) it = edges_.emplace(std::string(rid), EdgeState{}).first;
    EdgeState& edge = it->second;
    switch (h.type) {
      case Type::kHello: {
        edge.taken = edge.reported = 0;
        std::byte buf[96];
        MetaWriter w(buf, sizeof buf);
        std::byte version{kVersion};
        w.add("version", Bytes(&version, 1))
            .add("backend", "bench-echo")
            .add_u64("instance", instance_);
        send(rid, {kVersion, Type::kWelcome, 0, {}}, w.bytes(), nullptr);
        return true;
      }
      case Type::kMessage:
        if (frames_.size() >= 4) {
          if (fanout_)
            publish(h.flags, frames_[3]);
          else
            send(rid, {kVersion, Type::kSend, h.flags, h.id}, {}, &frames_[3]);
        }
        break;
      case Type::kClientPublish:
        // A client's `wsedge:pub bench ...` the edge's ACL allowed: fanned out like a trigger,
        // so a run measures the edge's per-publish ACL check against the same delivery path.
        if (fanout_ && frames_.size() >= 4) publish(h.flags, frames_[3]);
        break;
      case Type::kOpen:
        if (fanout_) subscribe(rid, h.id);
        break;
      case Type::kClose:
        break;
      default:
        return true;  // BEAT, ACK, ERROR, SNAPSHOT: nothing to do
    }
    if (++edge.taken - edge.reported >= kCountEvery) {
      std::byte buf[32];
      MetaWriter w(buf, sizeof buf);
      w.add_u64("count", edge.taken);
      send(rid, {kVersion, Type::kReceived, 0, {}}, w.bytes(), nullptr);
      edge.reported = edge.taken;
    }
    return true;
  }

  // Header and meta from our buffers; the payload moved from the message that came in.
  void send(std::string_view rid, const Header& h, Bytes meta, zmq::message_t* payload) {
    auto head = encode_header(h);
    try {
      router_.send(zmq::buffer(rid), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      router_.send(zmq::buffer(head.data(), head.size()), zmq::send_flags::sndmore);
      if (payload) {
        router_.send(zmq::buffer(meta.data(), meta.size()), zmq::send_flags::sndmore);
        router_.send(*payload, zmq::send_flags::none);
      } else {
        router_.send(zmq::buffer(meta.data(), meta.size()), zmq::send_flags::none);
      }
    } catch (const zmq::error_t& e) {
      std::fprintf(stderr, "bridge_echo_backend: send: %s\n", e.what());
    }
  }

  void subscribe(std::string_view rid, const ConnId& id) {
    static constexpr char kList[] =
        "\x05"
        "bench";
    std::byte buf[32];
    MetaWriter w(buf, sizeof buf);
    w.add("channels", std::string_view(kList, 6));
    send(rid, {kVersion, Type::kSubscribe, 0, id}, w.bytes(), nullptr);
    if (subscribed_)
      ready(rid, id);
    else
      waiting_.push_back({std::string(rid), id});
  }

  void ready(std::string_view rid, const ConnId& id) {
    zmq::message_t text("ready", 5);
    send(rid, {kVersion, Type::kSend, 0, id}, {}, &text);
  }

  // The XPUB hands up each new subscription ("\x01" + topic): once "bench\0" is there, the
  // connections waiting for it are told they are ready.
  void watch_subscriptions() {
    zmq::message_t m;
    while (pub_.recv(m, zmq::recv_flags::dontwait)) {
      std::string_view s = m.to_string_view();
      if (s.size() == 7 && s[0] == '\x01' && s.substr(1) == std::string_view("bench\0", 6))
        subscribed_ = true;
    }
    if (!subscribed_) return;
    for (auto& [rid, id] : waiting_) ready(rid, id);
    waiting_.clear();
  }

  void publish(std::uint16_t flags, zmq::message_t& payload) {
    static constexpr char kTopic[] = "bench";
    std::byte buf[96];
    MetaWriter w(buf, sizeof buf);
    w.add("channel", "bench").add_u64("seq", ++seq_).add("publisher", publisher_);
    auto head = encode_header(
        {kVersion, Type::kPublish, static_cast<std::uint16_t>(flags & flag::kBinary), {}});
    pub_.send(zmq::buffer(kTopic, 6), zmq::send_flags::sndmore);  // "bench\0"
    pub_.send(zmq::buffer(head.data(), head.size()), zmq::send_flags::sndmore);
    pub_.send(zmq::buffer(w.bytes().data(), w.bytes().size()), zmq::send_flags::sndmore);
    pub_.send(payload, zmq::send_flags::none);
  }

  zmq::socket_t router_, pub_;
  bool fanout_;
  bool subscribed_ = false;
  std::uint64_t instance_ = 0, seq_ = 0;
  std::string publisher_;
  std::vector<zmq::message_t> frames_;
  std::map<std::string, EdgeState, std::less<>> edges_;  // one per edge core: few
  std::vector<std::pair<std::string, ConnId>> waiting_;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "bridge_echo_backend: %s\nusage: bridge_echo_backend --router ENDPOINT "
               "[--publish ENDPOINT]\n",
               why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string router, pub;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) usage(("missing value for " + a).c_str());
    if (a == "--router")
      router = argv[++i];
    else if (a == "--publish")
      pub = argv[++i];
    else
      usage(("unknown flag " + a).c_str());
  }
  if (router.empty()) usage("--router is required");
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  zmq::context_t ctx(1);
  Backend b(ctx, router, pub);
  b.run();
  return 0;
}
