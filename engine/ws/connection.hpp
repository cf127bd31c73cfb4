#pragma once
// What an application holds for one WebSocket connection: a small value handle, valid to copy
// and keep; after the connection ends, its calls do nothing and return kClosed.
#include <cstdint>
#include <span>
#include <string_view>

#include "engine/io/reactor.hpp"
#include "engine/protocol/frame.hpp"

namespace wsedge::ws {

class EndpointBase;

enum class SendResult : std::uint8_t {
  kOk,
  kBackpressure,  // queued, but output is backing up: wait for on_drain before sending more
  kClosed,        // not sent: the connection is gone or closing
};

// What on_upgrade answers: accept (status 101), optionally choosing a subprotocol, or refuse
// with an HTTP status and a short reason.
struct UpgradeDecision {
  std::uint16_t status = 101;
  std::string_view reason;
  std::string_view protocol;
};

class Connection {
 public:
  Connection() = default;
  Connection(EndpointBase* ep, io::SocketId id) : ep_(ep), id_(id) {}

  SendResult send(protocol::Opcode op, std::span<const std::byte> payload, bool fin = true);
  SendResult send_text(std::string_view text) {
    return send(protocol::Opcode::kText, std::as_bytes(std::span(text.data(), text.size())));
  }
  SendResult send_binary(std::span<const std::byte> data) {
    return send(protocol::Opcode::kBinary, data);
  }
  SendResult ping(std::span<const std::byte> payload = {});
  // Starts the closing handshake (RFC 6455 §7.1.2).
  void close(std::uint16_t code = 1000, std::string_view reason = {});

  bool open() const;
  std::size_t buffered() const;  // bytes queued and not yet sent
  std::uint64_t& user_data();    // free for the application, zero at open
  bool is_client() const;        // this side connected out (client role)
  io::SocketId id() const { return id_; }
  bool operator==(const Connection& o) const { return ep_ == o.ep_ && id_ == o.id_; }

 private:
  EndpointBase* ep_ = nullptr;
  io::SocketId id_;
};

}  // namespace wsedge::ws
