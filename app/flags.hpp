#pragma once
// Command-line flags of the wsedge binary.
#include <string>

#include "auth/gate.hpp"
#include "bridge/options.hpp"
#include "engine/server.hpp"
#include "ops/admin_server.hpp"

namespace wsedge::app {

struct Flags {
  ServerOptions server;
  bool echo = false;  // --app echo: the built-in echo instead of the bridge
  bridge::Options bridge;
  auth::Options auth;
  ops::AdminOptions admin;
  bool ready_needs_backends = false;  // /readyz 503 while a route has no backend up
  bool auth_mode_given = false;
  bool forward_headers_given = false;
  bool listen_given = false;
  bool first_byte_given = false;  // a default first-byte timeout over the handshake's is off
  bool proxy_protocol = false;    // --proxy-protocol: on every listener, the default's too
  bool help = false;
  bool version = false;
};

// Throws std::invalid_argument with a one-line message for unknown or malformed flags.
Flags parse_flags(int argc, char** argv);
std::string usage();

}  // namespace wsedge::app
