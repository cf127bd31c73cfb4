#pragma once
// Command-line flags of the wsedge binary.
#include <string>

#include "auth/gate.hpp"
#include "bridge/options.hpp"
#include "engine/server.hpp"

namespace wsedge::app {

struct Flags {
  ServerOptions server;
  bool echo = false;  // --app echo: the built-in echo instead of the bridge
  bridge::Options bridge;
  auth::Options auth;
  bool auth_mode_given = false;
  bool forward_headers_given = false;
  bool listen_given = false;
  bool first_byte_given = false;  // a default first-byte timeout over the handshake's is off
  log::Level log_level = log::Level::kInfo;  // applied by main(); a reload may change it
  log::Format log_format = log::Format::kJson;
  bool help = false;
  bool version = false;
};

// Throws std::invalid_argument with a one-line message for unknown or malformed flags.
Flags parse_flags(int argc, char** argv);
std::string usage();

}  // namespace wsedge::app
