#pragma once
// What an application holds for one WebSocket connection: a small value handle, valid to copy
// and keep. Every call checks that the handle still names the same connection: after it ends
// (and its slot is reused by a newer one) calls do nothing and answer as for a closed
// connection, and a default-constructed handle is a closed one.
#include <cstdint>
#include <span>
#include <string_view>

#include "config.hpp"
#include "engine/io/reactor.hpp"
#include "engine/protocol/frame.hpp"

namespace wsedge::ws {

class EndpointBase;
struct PreparedMessage;

enum class SendResult : std::uint8_t {
  kOk,
  kBackpressure,  // queued, but output is backing up: wait for on_drain before sending more
  kClosed,        // not sent: the connection is gone or closing
  kInvalid,       // not sent: a frame the peer must refuse (a control frame fragmented or over
                  // 125 bytes, RSV bits of no accepted extension)
};

// What on_upgrade answers, now or later (Connection::decide): accept with status 101, refuse
// with an HTTP status, or kPending to decide later.
struct UpgradeDecision {
  static constexpr std::uint16_t kPending = 0;
  std::uint16_t status = 101;
  std::string_view reason;      // refusal: a short text, also the response body
  std::string_view protocol;    // accept: the chosen subprotocol
  std::string_view extensions;  // accept: the Sec-WebSocket-Extensions answer
  std::string_view headers;     // either way: extra lines, each "Name: value\r\n"
                                // (WWW-Authenticate, Retry-After, Set-Cookie)
  std::uint8_t rsv = 0;         // accept: RSV bits the accepted extensions put on messages
  // accept: permessage-deflate for this connection (a bridge route's own mode); kDefault is
  // EndpointConfig::deflate.mode. Ignored when `extensions` is the application's own answer.
  DeflateMode deflate = DeflateMode::kDefault;

  static UpgradeDecision pending() { return {.status = kPending}; }
  static UpgradeDecision refuse(std::uint16_t status, std::string_view reason,
                                std::string_view headers = {}) {
    return {.status = status, .reason = reason, .headers = headers};
  }
};

class Connection {
 public:
  Connection() = default;
  Connection(EndpointBase* ep, io::SocketId id) : ep_(ep), id_(id) {}

  // `rsv`: RSV bits for a message an accepted extension transformed (RSV1: compressed).
  SendResult send(protocol::Opcode op, std::span<const std::byte> payload, bool fin = true,
                  std::uint8_t rsv = 0) const;
  SendResult send_text(std::string_view text) const {
    return send(protocol::Opcode::kText, std::as_bytes(std::span(text.data(), text.size())));
  }
  SendResult send_binary(std::span<const std::byte> data) const {
    return send(protocol::Opcode::kBinary, data);
  }
  // A frame EndpointBase::prepare_frame built once for many connections (publish): queued
  // without a copy in plain ws. Server-side connections only (kInvalid for a client one).
  SendResult send_prepared(memory::Buffer* frame) const;
  // A message EndpointBase::prepare_message built once for many connections: the variant this
  // connection negotiated (compressed or not), framed once per variant.
  SendResult send_prepared(PreparedMessage& m) const;
  SendResult ping(std::span<const std::byte> payload = {}) const;
  // Starts the closing handshake (RFC 6455 §7.1.2).
  void close(std::uint16_t code = 1000, std::string_view reason = {}) const;
  // The decision for an upgrade that on_upgrade left pending. False when it is too late: the
  // client left, the decision deadline passed, or it was decided already.
  bool decide(const UpgradeDecision& d) const;

  // Stop reading this client (its backend is full, say) until resume_reading(); TCP pushes
  // back on it meanwhile.
  void pause_reading() const;
  void resume_reading() const;

  bool open() const;
  // Still this connection (any phase, from the upgrade to on_close).
  bool current() const;
  std::size_t buffered() const;  // bytes queued and not yet sent
  bool is_client() const;        // this side connected out (client role)
  io::PeerAddress peer() const;
  unsigned listener() const;  // which listening socket accepted it (Reactor::listen's index)
  io::SocketId id() const { return id_; }
  EndpointBase* endpoint() const { return ep_; }
  bool operator==(const Connection& o) const { return ep_ == o.ep_ && id_ == o.id_; }

 private:
  EndpointBase* ep_ = nullptr;
  io::SocketId id_;
};

}  // namespace wsedge::ws
