#pragma once
// A WebSocket endpoint on one reactor: the server side of accepted connections and the client
// side of connect(). It is the reactor's Handler and calls the application's:
//
//   void on_open(Connection);
//   void on_message(Connection, protocol::Opcode, std::span<std::byte> payload);
//   void on_close(Connection, std::uint16_t code, std::string_view reason);
//   void on_drain(Connection);   // output fell back below the low-water mark
//   UpgradeDecision on_upgrade(Connection, const protocol::UpgradeRequest&);   // optional
//
// Payload views are valid during the call only. on_close comes exactly once for each
// connection that was opened, and for each client connection, opened or not.
#include <cstring>
#include <span>
#include <string_view>

#include "endpoint_base.hpp"
#include "engine/protocol/close_code.hpp"

namespace wsedge::ws {

template <class App>
class Endpoint : public EndpointBase {
 public:
  Endpoint(io::Reactor& reactor, const EndpointConfig& cfg, App& app)
      : EndpointBase(reactor, cfg), app_(app) {
    on_close_hook_ = [](EndpointBase* self, io::SocketId id, std::uint16_t code,
                        std::string_view reason) {
      auto* ep = static_cast<Endpoint*>(self);
      ep->app_.on_close(Connection{ep, id}, code, reason);
    };
  }

  // Client role: connects, handshakes, then on_open (or on_close with 1006 on failure).
  Connection connect(const io::Address& to, std::string_view host, std::string_view target,
                     std::string_view protocols = {}) {
    io::SocketId id = reactor_.connect(to);
    begin_client_handshake(id, host, target, protocols);
    return {this, id};
  }

  // --- io::Reactor handler ---
  void on_accept(io::SocketId id) {
    start(id, kServerHandshake, 0, cfg_.handshake_timeout_ms);
    start_tls(id);
  }

  void on_connect(io::SocketId id, int err) {
    if (err == 0) return;
    ++counters_.abnormal_closes;
    finish(id, protocol::close_code::kAbnormal, std::strerror(err));
    reset(id);
  }

  void on_data(io::SocketId id, std::byte* data, std::size_t len) {
    if (tls::Session* s = tls_session(id)) {
      tls_receive(id, *s, data, len,
                  [&](std::byte* plain, std::size_t n) { on_plaintext(id, plain, n); });
      return;
    }
    on_plaintext(id, data, len);
  }

  void on_plaintext(io::SocketId id, std::byte* data, std::size_t len) {
    Conn& c = conn(id);
    switch (c.phase) {
      case kServerHandshake:
        server_handshake(id, c, data, len);
        break;
      case kClientHandshake:
        client_handshake(id, c, data, len);
        break;
      case kOpen:
      case kCloseSent:
        frames(id, c, data, len);
        break;
      case kIdle:
      case kDone:
        break;
    }
    if (c.phase == kDone) reset(id);
  }

  void on_peer_closed(io::SocketId id, int err) {
    Conn& c = conn(id);
    if (c.phase != kServerHandshake) ++counters_.abnormal_closes;
    finish(id, protocol::close_code::kAbnormal,
           err ? std::strerror(err) : "closed without a Close frame");
    reactor_.abort(id);
    reset(id);
  }

  void on_writable(io::SocketId id) {
    if (is_open(id)) app_.on_drain(Connection{this, id});
  }

  void on_timer(io::SocketId id) {
    Conn& c = conn(id);
    switch (c.phase) {
      case kOpen:
        keepalive(id, c);
        return;
      case kServerHandshake:
      case kClientHandshake:
        ++counters_.handshake_timeouts;
        finish(id, protocol::close_code::kAbnormal, "handshake timed out");
        break;
      case kCloseSent:
        ++counters_.close_timeouts;
        finish(id, protocol::close_code::kAbnormal, "close handshake timed out");
        break;
      case kIdle:
      case kDone:
        break;
    }
    reactor_.abort(id);
    reset(id);
  }

  // Graceful stop: no new connections; open ones get Close 1001 and finish their handshake.
  void on_stop() {
    reactor_.stop_listening();
    for (std::uint32_t i = 0; i < reactor_.slots(); ++i) {
      io::SocketId id = reactor_.id_at(i);
      if (i >= conns_.size() || !reactor_.writable(id)) continue;
      Phase p = conns_[i].phase;
      if (p == kOpen) {
        close(id, protocol::close_code::kGoingAway, "server shutting down");
      } else if (p == kServerHandshake || p == kClientHandshake) {
        finish(id, protocol::close_code::kGoingAway, "server shutting down");
        reactor_.abort(id);
        reset(id);
      }
    }
    reactor_.exit_when_idle();
  }

 private:
  void keepalive(io::SocketId id, Conn& c) {
    if (c.flags & kHeardFrom) {
      c.flags &= static_cast<std::uint8_t>(~kHeardFrom);
    } else if (c.flags & kAwaitingPong) {
      ++counters_.ping_timeouts;
      finish(id, protocol::close_code::kAbnormal, "ping timeout");
      reactor_.abort(id);
      reset(id);
      return;
    } else {
      ping(id, {});
      c.flags |= kAwaitingPong;
    }
    arm_keepalive(id);
  }

  // Bytes that follow the handshake in the same read are frames; they may sit in the pooled
  // handshake buffer, which is released only after they are parsed.
  void after_handshake(io::SocketId id, Conn& c, std::byte* rest, std::size_t rest_len) {
    memory::Buffer* hs = c.handshake;
    c.handshake = nullptr;
    if (rest_len && (c.phase == kOpen || c.phase == kCloseSent)) frames(id, c, rest, rest_len);
    if (hs) reactor_.pool().release(hs);
  }

  void server_handshake(io::SocketId id, Conn& c, std::byte* data, std::size_t len) {
    std::byte* base = data;
    std::size_t have = len;
    if (c.handshake) {
      c.handshake = reactor_.pool().append(c.handshake, data, len);
      base = c.handshake->data();
      have = c.handshake->len;
    }
    protocol::UpgradeRequest req;
    auto r = protocol::parse_upgrade_request({reinterpret_cast<const char*>(base), have},
                                             cfg_.max_header_bytes, req);
    switch (r.kind) {
      case protocol::RequestParse::kIncomplete:
        if (!c.handshake) c.handshake = reactor_.pool().append(nullptr, data, len);
        return;
      case protocol::RequestParse::kReject:
        refuse(id, r.status, r.reason);
        return;
      case protocol::RequestParse::kHealth:
        refuse(id, 200, "ok");
        return;
      case protocol::RequestParse::kUpgrade:
        break;
    }
    UpgradeDecision d;
    if constexpr (requires { app_.on_upgrade(Connection{}, req); })
      d = app_.on_upgrade(Connection{this, id}, req);
    if (d.status != 101) {
      refuse(id, d.status, d.reason.empty() ? std::string_view("refused") : d.reason);
      return;
    }
    accept_upgrade(id, req.key, d.protocol);
    app_.on_open(Connection{this, id});
    after_handshake(id, c, base + r.consumed, have - r.consumed);
  }

  void client_handshake(io::SocketId id, Conn& c, std::byte* data, std::size_t len) {
    constexpr std::size_t kKey = sizeof(protocol::ClientKey);
    c.handshake = reactor_.pool().append(c.handshake, data, len);
    auto* base = reinterpret_cast<const char*>(c.handshake->data());
    std::string_view key(base, kKey);
    std::string_view resp(base + kKey, c.handshake->len - kKey);
    auto r = protocol::parse_upgrade_response(resp, cfg_.max_header_bytes, key);
    if (r.kind == protocol::RequestParse::kIncomplete) return;
    if (r.kind == protocol::RequestParse::kReject) {
      ++counters_.handshake_rejected;
      finish(id, protocol::close_code::kAbnormal, r.reason);
      reactor_.abort(id);
      return;
    }
    ++counters_.handshakes;
    c.phase = kOpen;
    arm_keepalive(id);
    app_.on_open(Connection{this, id});
    std::size_t used = kKey + r.consumed;
    after_handshake(id, c, c.handshake->data() + used, c.handshake->len - used);
  }

  void frames(io::SocketId id, Conn& c, std::byte* data, std::size_t len) {
    using protocol::ReadEvent;
    const protocol::ReaderLimits lim = limits(c);
    memory::BufferPool& pool = reactor_.pool();
    c.flags = static_cast<std::uint8_t>((c.flags | kHeardFrom) & ~kAwaitingPong);
    while (len > 0 && (c.phase == kOpen || c.phase == kCloseSent)) {
      protocol::ReadResult r = c.reader.next(data, len, lim, pool);
      data += r.consumed;
      len -= r.consumed;
      switch (r.event) {
        case ReadEvent::kNeedMore:
        case ReadEvent::kPong:
          break;
        case ReadEvent::kMessage:
          // After our Close, the peer's data is read and dropped (RFC 6455 §1.4).
          if (c.phase == kOpen) {
            ++counters_.messages_in;
            delivering_ = &c.reader;
            app_.on_message(Connection{this, id}, r.opcode, r.payload);
            delivering_ = nullptr;
          }
          break;
        case ReadEvent::kPing:
          ++counters_.pings_in;
          if (c.phase == kOpen)
            write_frame(id, c.flags & kClient, protocol::Opcode::kPong, r.payload, true);
          break;
        case ReadEvent::kClose: {
          ++counters_.closes_in;
          // Answer an unsolicited Close with the same code (§5.5.1); ours was already sent.
          if (c.phase == kOpen) send_close(id, r.code, {});
          std::string_view reason(reinterpret_cast<const char*>(r.payload.data()),
                                  r.payload.size());
          finish(id, r.code, reason);
          close_socket(id);
          return;
        }
        case ReadEvent::kFail:
          count_failure(r.code);
          if (c.phase == kOpen) send_close(id, r.code, r.error);
          finish(id, r.code, r.error);
          close_socket(id);
          return;
      }
    }
    if (c.phase == kOpen || c.phase == kCloseSent) c.reader.release_delivered(pool);
  }

  App& app_;
};

}  // namespace wsedge::ws
