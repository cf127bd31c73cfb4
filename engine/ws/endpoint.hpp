#pragma once
// A WebSocket endpoint on one reactor: the server side of accepted connections and the client
// side of connect(). It is the reactor's Handler and calls the application's:
//
//   void on_open(Connection);
//   void on_message(Connection, protocol::Opcode, std::span<std::byte> payload);
//   void on_close(Connection, std::uint16_t code, std::string_view reason);
//   void on_drain(Connection);   // output fell back below the low-water mark
// and optionally:
//   UpgradeDecision on_upgrade(Connection, const protocol::UpgradeRequest&);
//       accept, refuse, or UpgradeDecision::pending() and Connection::decide() later
//   void on_message(Connection, protocol::Opcode, std::span<std::byte>, std::uint8_t rsv);
//       instead of the three-argument form, for an application that accepts extensions: the
//       message's RSV bits (RSV1: compressed); its text is not UTF-8-validated then (the
//       application validates after transforming)
//   struct ConnState;  state(Connection) gives it, value-initialised when the connection
//       starts, cleared after on_close
//   void on_reload();  SIGHUP, on the core's own thread, after TLS certificates are reloaded
//   void on_draining(std::uint32_t window_ms);  the server is stopping: no new connections;
//       the open ones get Close 1001 spread over window_ms (0: at once), starting after this
//   void on_flush();  at the end of every loop turn, after its completions and before output
//       is encrypted and sent (also when a long turn sends what it has so far, and once as
//       run() returns): frames sent here leave in the same turn. For work that batches a
//       turn's events: re-checking a foreign fd after the turn's sends (ZeroMQ's ZMQ_FD is
//       edge-triggered), coalescing what many messages produced into one frame
//   void access_fields(Connection, log::Fields&);  with EndpointConfig::access_log, as a
//       server connection ends (before on_close): the application's fields of its `access`
//       line (the bridge: route, user); never a token or a query string
//
// Payload views are valid during the call only. on_close comes exactly once for each
// connection that was opened, and for each client connection, opened or not.
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "endpoint_base.hpp"
#include "engine/log.hpp"
#include "engine/protocol/close_code.hpp"

namespace wsedge::ws {

template <class App>
concept HasConnState = requires {
  typename App::ConnState;
};

namespace detail {
struct NoConnState {};
template <class App>
struct ConnStateOf {
  using type = NoConnState;
};
template <HasConnState App>
struct ConnStateOf<App> {
  using type = typename App::ConnState;
};
}  // namespace detail

template <class App>
class Endpoint : public EndpointBase {
  using State = typename detail::ConnStateOf<App>::type;

 public:
  Endpoint(io::Reactor& reactor, const EndpointConfig& cfg, App& app)
      : EndpointBase(reactor, cfg), app_(app) {
    on_close_hook_ = [](EndpointBase* self, io::SocketId id, std::uint16_t code,
                        std::string_view reason) {
      auto* ep = static_cast<Endpoint*>(self);
      ep->app_.on_close(Connection{ep, id}, code, reason);
    };
    decide_hook_ = [](EndpointBase* self, io::SocketId id, const UpgradeDecision& d) {
      auto* ep = static_cast<Endpoint*>(self);
      ep->finish_deferred_upgrade(id, ep->conn(id), d);
    };
    if constexpr (requires(App & a, Connection c, log::Fields & f) { a.access_fields(c, f); }) {
      access_hook_ = [](EndpointBase* self, io::SocketId id, log::Fields& f) {
        auto* ep = static_cast<Endpoint*>(self);
        ep->app_.access_fields(Connection{ep, id}, f);
      };
    }
    if constexpr (HasConnState<App>) {
      reset_hook_ = [](EndpointBase* self, std::uint32_t idx) {
        static_cast<Endpoint*>(self)->states_[idx] = State{};
      };
    }
  }

  // The application's state for a connection, or null when the handle is stale.
  template <class A = App>
  requires HasConnState<A>
  typename A::ConnState* state(Connection c) {
    if (c.endpoint() != this || !is_current(c.id())) return nullptr;
    return &states_[c.id().idx];
  }

  // Client role: connects, handshakes, then on_open (or on_close with 1006 on failure).
  Connection connect(const io::Address& to, std::string_view host, std::string_view target,
                     std::string_view protocols = {}) {
    io::SocketId id = reactor_.connect(to);
    track(id);
    begin_client_handshake(id, host, target, protocols);
    return {this, id};
  }

  // --- io::Reactor handler ---
  void on_accept(io::SocketId id) {
    track(id);
    begin_server_handshake(id);
  }

  void on_connect(io::SocketId id, int err) {
    if (err == 0) return;
    ++counters_.abnormal_closes;
    // The reactor has already closed the socket.
    finish(id, protocol::close_code::kAbnormal, std::strerror(err));
    reset(id);
  }

  void on_data(io::SocketId id, std::byte* data, std::size_t len) {
    Conn& c = conn(id);  // stable: conns_ never reallocates (reserved up front)
    // Any byte, a ClientHello's or a PROXY header's included, ends the first-byte stage of
    // the handshake.
    if (c.phase == kServerHandshake || c.phase == kProxyHeader) c.flags |= kHeardFrom;
    busy(id, [&] {
      if (c.phase != kProxyHeader) {
        receive(id, data, len);
        return;
      }
      // The header precedes TLS; what follows it in the same read is the client's first
      // bytes (a proxy forwards them as they come), lost if not handed on now.
      ProxyRest rest = proxy_header(id, data, len);
      if (rest.len && c.phase == kServerHandshake) receive(id, rest.data, rest.len);
      if (rest.held) reactor_.pool().release(rest.held);
    });
  }

  // The peer's FIN (err 0) or a socket error. Everything received before the FIN has been
  // handled; what the application queued in answer still goes out (a client that sends and
  // then shuts down its write side reads the replies), then our FIN.
  void on_peer_closed(io::SocketId id, int err) {
    Conn& c = conn(id);
    if (c.phase == kUpgradePending)
      ++counters_.upgrade_abandoned;
    else if (c.phase != kServerHandshake && c.phase != kProxyHeader)
      ++counters_.abnormal_closes;
    end(id, protocol::close_code::kAbnormal,
        err ? std::strerror(err) : "closed without a Close frame",
        err ? Ending::kAbort : Ending::kGraceful);
  }

  void on_drain(io::SocketId id) {
    if (is_open(id)) app_.on_drain(Connection{this, id});
  }

  // The turn's completions are handled: the application's turn-end work first, so what it
  // sends there is encrypted and leaves in this turn's flush, not the next turn's.
  void on_flush() {
    if constexpr (requires { app_.on_flush(); }) app_.on_flush();
    EndpointBase::on_flush();
  }

  // SIGHUP: new TLS certificates, then the application's own (auth keys, an ACL file).
  void on_reload() {
    EndpointBase::on_reload();
    if constexpr (requires { app_.on_reload(); }) app_.on_reload();
  }

  void on_timer(io::SocketId id) {
    Conn& c = conn(id);
    switch (c.phase) {
      case kOpen:
        keepalive(id, c);
        return;
      case kUpgradePending:
        ++counters_.upgrade_timeouts;
        refuse(id, 503, "upgrade decision timed out", "Retry-After: 5\r\n");
        reset(id);
        return;
      case kProxyHeader:
      case kServerHandshake:
        handshake_deadline(id);
        return;
      case kClientHandshake:
        ++counters_.handshake_timeouts;
        end(id, protocol::close_code::kAbnormal, "handshake timed out", Ending::kAbort);
        return;
      case kCloseSent:
        ++counters_.close_timeouts;
        end(id, protocol::close_code::kAbnormal, "close handshake timed out", Ending::kAbort);
        return;
      case kIdle:
      case kDone:
        end(id, protocol::close_code::kAbnormal, {}, Ending::kAbort);
        return;
    }
  }

  // Stop (SIGTERM, SIGINT): no new connections; open connections get Close 1001, spread over
  // the reactor's drain window (docs/OPERATIONS.md §4) so their clients do not all reconnect
  // in the same second. Called again with a shorter window (a second signal), the rest are
  // closed now.
  void on_stop() {
    std::uint32_t window = reactor_.drain_ms();
    if (!drain_.started) {
      reactor_.stop_listening();
      if constexpr (requires { app_.on_draining(window); }) app_.on_draining(window);
    }
    // Handshakes under way finish (and take their turn in the drain) unless the stop is
    // immediate: a client the kernel handed us before the stop must not see an error.
    for (std::uint32_t i = 0; window == 0 && i < reactor_.slots(); ++i) {
      io::SocketId id = reactor_.id_at(i);
      if (i >= conns_.size() || !reactor_.accepts_output(id)) continue;
      Phase p = conns_[i].phase;
      if (p == kProxyHeader || p == kServerHandshake || p == kClientHandshake ||
          p == kUpgradePending)
        end(id, protocol::close_code::kGoingAway, "server shutting down", Ending::kAbort);
    }
    drain(window);
    reactor_.exit_when_idle();
  }

 private:
  // The connection's bytes as they arrive: through TLS when it speaks TLS.
  void receive(io::SocketId id, std::byte* data, std::size_t len) {
    if (tls::Session* s = tls_session(id)) {
      tls_receive(id, *s, data, len,
                  [&](std::byte* plain, std::size_t n) { on_plaintext(id, plain, n); });
      return;
    }
    on_plaintext(id, data, len);
  }

  // Every connection's application state starts fresh (ConnState{}) with the connection.
  void track(io::SocketId id) {
    if constexpr (HasConnState<App>) {
      if (states_.size() <= id.idx) states_.resize(id.idx + 1);
    }
  }

  void on_plaintext(io::SocketId id, std::byte* data, std::size_t len) {
    Conn& c = conn(id);
    switch (c.phase) {
      case kServerHandshake:
        server_handshake(id, c, data, len);
        break;
      case kUpgradePending:
        // A client must wait for the 101 before it sends (RFC 6455 §4.1); keep a little of
        // what an eager one sends, bounded like a request header.
        if (c.handshake->len + len > 2 * cfg_.max_header_bytes)
          refuse(id, 400, "data sent before the upgrade was answered");
        else
          c.handshake = reactor_.pool().append(c.handshake, data, len);
        break;
      case kClientHandshake:
        client_handshake(id, c, data, len);
        break;
      case kOpen:
      case kCloseSent:
        frames(id, c, data, len);
        break;
      case kProxyHeader:  // on_data reads the header itself
      case kIdle:
      case kDone:
        break;
    }
  }

  void keepalive(io::SocketId id, Conn& c) {
    if (c.flags & kHeardFrom) {
      c.flags &= static_cast<std::uint8_t>(~kHeardFrom);
    } else if (c.flags & kAwaitingPong) {
      // A Close first, so a peer that is alive but slow learns why; then the socket goes
      // (bounded by the linger deadline).
      ++counters_.ping_timeouts;
      send_close(id, protocol::close_code::kInternalError, "ping timeout");
      end(id, protocol::close_code::kInternalError, "ping timeout", Ending::kGraceful);
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
    std::span<std::byte> in = gather(c, data, len);
    std::byte* base = in.data();
    std::size_t have = in.size();
    protocol::UpgradeRequest req;
    auto r = protocol::parse_upgrade_request({reinterpret_cast<const char*>(base), have},
                                             cfg_.max_header_bytes, req);
    track_incomplete(id, r.kind == protocol::RequestParse::kIncomplete, len);
    switch (r.kind) {
      case protocol::RequestParse::kIncomplete:
        if (!c.handshake) c.handshake = reactor_.pool().append(nullptr, data, len);
        return;
      case protocol::RequestParse::kReject:
        refuse(id, r.status, r.reason);
        return;
      case protocol::RequestParse::kPlainGet:
        answer_plain_get(id, req.target);
        return;
      case protocol::RequestParse::kUpgrade:
        break;
    }
    if (!screen_upgrade(id, req.origin)) return;
    UpgradeDecision d;
    if constexpr (requires { app_.on_upgrade(Connection{}, req); })
      d = app_.on_upgrade(Connection{this, id}, req);
    if (d.status == UpgradeDecision::kPending) {
      // The request's bytes must outlive this read: the decision re-reads them.
      if (!c.handshake) c.handshake = reactor_.pool().append(nullptr, data, len);
      c.phase = kUpgradePending;
      ++counters_.upgrades_pending;
      reactor_.set_timer(id, cfg_.upgrade_decision_timeout_ms);
      return;
    }
    answer_upgrade(id, c, req, d, base + r.consumed, have - r.consumed);
  }

  void finish_deferred_upgrade(io::SocketId id, Conn& c, const UpgradeDecision& d) {
    protocol::UpgradeRequest req;
    std::byte* base = c.handshake->data();
    std::size_t have = c.handshake->len;
    auto r = protocol::parse_upgrade_request({reinterpret_cast<const char*>(base), have},
                                             cfg_.max_header_bytes, req);
    answer_upgrade(id, c, req, d, base + r.consumed, have - r.consumed);
  }

  void answer_upgrade(io::SocketId id, Conn& c, const protocol::UpgradeRequest& req,
                      const UpgradeDecision& d, std::byte* rest, std::size_t rest_len) {
    if (d.status != 101) {
      refuse(id, d.status, d.reason.empty() ? std::string_view("refused") : d.reason, d.headers);
      return;
    }
    if (d.rsv && !kTakesRsv) {
      // Its on_message could not tell transformed messages (nor validate their UTF-8).
      LOG_ERROR_LIMITED(1, "extension_without_rsv_handler",
                        log::kv("detail",
                                "an extension was accepted by an application without "
                                "on_message(..., rsv)"));
      refuse(id, 500, "extension not supported");
      return;
    }
    if (!accept_upgrade(id, req, d)) return;
    app_.on_open(Connection{this, id});
    after_handshake(id, c, rest, rest_len);
  }

  void client_handshake(io::SocketId id, Conn& c, std::byte* data, std::size_t len) {
    constexpr std::size_t kKey = sizeof(protocol::ClientKey);
    c.handshake = reactor_.pool().append(c.handshake, data, len);
    auto* base = reinterpret_cast<const char*>(c.handshake->data());
    std::string_view key(base, kKey);
    std::string_view resp(base + kKey, c.handshake->len - kKey);
    auto r = protocol::parse_upgrade_response(resp, cfg_.max_header_bytes, key);
    if (r.kind == protocol::RequestParse::kIncomplete) return;
    // An extension the client did not offer, or an answer to its permessage-deflate offer
    // that breaks RFC 7692 §5, fails the connection.
    if (r.kind == protocol::RequestParse::kUpgrade && !accept_answer(id, r.extensions))
      r = {protocol::RequestParse::kReject,
           r.status,
           "server's extensions answer not acceptable",
           r.consumed,
           {},
           {}};
    if (r.kind == protocol::RequestParse::kReject) {
      ++counters_.handshake_rejected;
      end(id, protocol::close_code::kAbnormal, r.reason, Ending::kAbort);
      return;
    }
    ++counters_.handshakes;
    c.phase = kOpen;
    arm_keepalive(id);
    if (drain_.started) drain_later(id);
    app_.on_open(Connection{this, id});
    std::size_t used = kKey + r.consumed;
    after_handshake(id, c, c.handshake->data() + used, c.handshake->len - used);
  }

  // Applications that accept extensions take the message's RSV bits.
  static constexpr bool kTakesRsv = requires(App & a, protocol::ReadResult r) {
    a.on_message(Connection{}, r.opcode, r.payload, std::uint8_t{});
  };

  void deliver(io::SocketId id, const protocol::ReadResult& r) {
    if constexpr (kTakesRsv)
      app_.on_message(Connection{this, id}, r.opcode, r.payload, r.rsv);
    else
      app_.on_message(Connection{this, id}, r.opcode, r.payload);
  }

  void frames(io::SocketId id, Conn& c, std::byte* data, std::size_t len) {
    using protocol::ReadEvent;
    const protocol::ReaderLimits lim = limits(id, c);
    memory::BufferPool& pool = reactor_.pool();
    const std::size_t read_len = len;
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
            // Counted and charged as the application gets it: inflated.
            memory::Buffer* inflated = nullptr;
            if (!deflate_conns_.empty() && deflate_conn(id) && !inflate_message(id, r, inflated))
              return;
            ++counters_.messages_in;
            counters_.payload_bytes_in += r.payload.size();
            if (ConnStats* s = stats(id)) {
              ++s->messages_in;
              s->bytes_in += r.payload.size();
            }
            if (!charge_message(id, r.payload.size())) {
              if (inflated) pool.release(inflated);
              return;
            }
            // A deferred upgrade decided from inside another connection's on_message nests
            // here: put back whose message was being delivered.
            protocol::MessageReader* outer = delivering_;
            delivering_ = &c.reader;
            deliver(id, r);
            delivering_ = outer;
            if (inflated) pool.release(inflated);
          }
          break;
        case ReadEvent::kPing:
          ++counters_.pings_in;
          if (c.phase == kOpen)
            write_frame(id, c.flags & kClient, protocol::Opcode::kPong, r.payload, true, 0);
          break;
        case ReadEvent::kClose: {
          ++counters_.closes_in;
          // Answer an unsolicited Close with the same code (§5.5.1); ours was already sent.
          if (c.phase == kOpen) {
            c.flags |= kPeerClose;
            send_close(id, r.code, {});
          }
          std::string_view reason(reinterpret_cast<const char*>(r.payload.data()),
                                  r.payload.size());
          end(id, r.code, reason, Ending::kGraceful);
          return;
        }
        case ReadEvent::kFail:
          count_failure(r);
          if (c.phase == kOpen) send_close(id, r.code, r.error);
          end(id, r.code, r.error, Ending::kGraceful);
          return;
      }
    }
    if (c.phase == kOpen) track_incomplete(id, c.reader.mid_frame(), read_len);
    if (c.phase == kOpen || c.phase == kCloseSent) c.reader.release_delivered(pool);
  }

  App& app_;
  std::vector<State> states_;  // by slot; empty unless App has a ConnState
};

}  // namespace wsedge::ws
