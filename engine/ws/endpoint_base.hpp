#pragma once
// The application-independent half of a WebSocket endpoint: per-connection protocol state,
// framing of outgoing messages, and the handshake answers. Endpoint<App> adds the calls into
// the application; keeping this half out of the template keeps it compiled once.
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "config.hpp"
#include "connection.hpp"
#include "counters.hpp"
#include "engine/io/reactor.hpp"
#include "engine/protocol/http_upgrade.hpp"
#include "engine/protocol/message_reader.hpp"

namespace wsedge::ws {

class EndpointBase {
 public:
  EndpointBase(io::Reactor& reactor, const EndpointConfig& cfg);
  EndpointBase(const EndpointBase&) = delete;
  EndpointBase& operator=(const EndpointBase&) = delete;

  SendResult send(io::SocketId id, protocol::Opcode op, std::span<const std::byte> payload,
                  bool fin);
  SendResult ping(io::SocketId id, std::span<const std::byte> payload);
  // Starts the closing handshake; the application hears on_close when it completes.
  void close(io::SocketId id, std::uint16_t code, std::string_view reason);
  bool is_open(io::SocketId id) const {
    return reactor_.alive(id) && conns_[id.idx].phase == kOpen;
  }
  std::size_t buffered(io::SocketId id) const {
    return reactor_.alive(id) ? reactor_.queued(id) : 0;
  }
  std::uint64_t& user_data(io::SocketId id) { return conns_[id.idx].user; }
  bool is_client(io::SocketId id) const { return conns_[id.idx].flags & kClient; }

  io::Reactor& reactor() { return reactor_; }
  const EndpointConfig& config() const { return cfg_; }
  const EndpointCounters& counters() const { return counters_; }
  // Connections in a WebSocket phase on this core (handshaking, open or closing).
  std::size_t connections() const { return reactor_.live(); }

 protected:
  enum Phase : std::uint8_t {
    kIdle,             // slot unused
    kServerHandshake,  // waiting for the client's upgrade request
    kClientHandshake,  // waiting for the server's 101
    kOpen,
    kCloseSent,  // our Close is out; waiting for the peer's
    kDone,       // finished; the reactor is closing the socket
  };
  enum ConnFlag : std::uint8_t { kClient = 1, kHeardFrom = 2, kAwaitingPong = 4 };

  struct Conn {
    protocol::MessageReader reader;
    memory::Buffer* handshake = nullptr;  // upgrade bytes split across reads; client: key first
    std::uint64_t user = 0;
    Phase phase = kIdle;
    std::uint8_t flags = 0;
  };

  Conn& conn(io::SocketId id) { return conns_[id.idx]; }
  Conn& start(io::SocketId id, Phase phase, std::uint8_t flags, std::uint32_t timer_ms);
  // Gives back the connection's pooled storage; idempotent.
  void reset(io::SocketId id);
  // Ends the connection's application-visible life: on_close once, if the application knew it.
  void finish(io::SocketId id, std::uint16_t code, std::string_view reason);
  protocol::ReaderLimits limits(const Conn& c) const {
    return {cfg_.max_message, !(c.flags & kClient)};
  }

  void write_frame(io::SocketId id, bool client, protocol::Opcode op,
                   std::span<const std::byte> payload, bool fin);
  void send_close(io::SocketId id, std::uint16_t code, std::string_view reason);
  // Answers a handshake with an HTTP error (or 200 for /healthz) and closes.
  void refuse(io::SocketId id, std::uint16_t status, std::string_view reason);
  void accept_upgrade(io::SocketId id, std::string_view key, std::string_view protocol);
  // Counts a protocol failure by the close code it earns.
  void count_failure(std::uint16_t code);
  // Schedules the next keep-alive check: a ping after an idle interval.
  void arm_keepalive(io::SocketId id);
  // Client role: writes the upgrade request and keeps the key to check the answer.
  void begin_client_handshake(io::SocketId id, std::string_view host, std::string_view target,
                              std::string_view protocols);

  // Endpoint<App> points this at App::on_close, so code outside the template can end a
  // connection. Called only when a connection ends, never per message.
  using CloseHook = void (*)(EndpointBase*, io::SocketId, std::uint16_t, std::string_view);
  CloseHook on_close_hook_ = nullptr;

  io::Reactor& reactor_;
  EndpointConfig cfg_;
  EndpointCounters counters_;
  std::vector<Conn> conns_;   // indexed like the reactor's slots
  std::uint64_t mask_state_;  // xorshift state for client masking keys
};

inline SendResult Connection::send(protocol::Opcode op, std::span<const std::byte> payload,
                                   bool fin) {
  return ep_ ? ep_->send(id_, op, payload, fin) : SendResult::kClosed;
}
inline SendResult Connection::ping(std::span<const std::byte> payload) {
  return ep_ ? ep_->ping(id_, payload) : SendResult::kClosed;
}
inline void Connection::close(std::uint16_t code, std::string_view reason) {
  if (ep_) ep_->close(id_, code, reason);
}
inline bool Connection::open() const {
  return ep_ && ep_->is_open(id_);
}
inline std::size_t Connection::buffered() const {
  return ep_ ? ep_->buffered(id_) : 0;
}
inline std::uint64_t& Connection::user_data() {
  return ep_->user_data(id_);
}
inline bool Connection::is_client() const {
  return ep_ && ep_->is_client(id_);
}

}  // namespace wsedge::ws
