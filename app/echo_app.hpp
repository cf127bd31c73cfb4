#pragma once
// The built-in application: every message goes back to its sender exactly as it came, text
// as text, binary as binary. It is what a fresh install serves, and what the tests and the
// bench drive.
#include <cstdint>
#include <span>
#include <string_view>

#include "engine/ws/connection.hpp"

namespace wsedge::app {

struct EchoApp {
  void on_open(ws::Connection) {}
  void on_message(ws::Connection c, protocol::Opcode op, std::span<std::byte> payload) {
    c.send(op, payload);
  }
  void on_close(ws::Connection, std::uint16_t, std::string_view) {}
  // Reading pauses by itself while a client's output is backed up; nothing to resume here.
  void on_drain(ws::Connection) {}
};

}  // namespace wsedge::app
