#pragma once
// Command-line flags of the wsedge binary, and the config file that can say all of them
// (docs/OPERATIONS.md, section 3).
#include <span>
#include <string>
#include <vector>

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
  std::string config_file;        // --config; empty: none
  bool check_config = false;
  log::Level log_level = log::Level::kInfo;  // applied by main(); a reload may change it
  log::Format log_format = log::Format::kJson;
  bool help = false;
  bool version = false;
};

// The flags (without the program name), over the values of the --config file if one is given:
// a flag on the command line replaces every value the file gave it. Throws
// std::invalid_argument with every error found, one a line; a file's errors start with
// FILE:LINE:COLUMN: KEY.
Flags parse_flags(std::span<const std::string> args);
std::string usage();

// Loads, and drops, what a start loads from the files `f` names: TLS certificates and keys,
// auth keys, the ACL. Throws what is wrong, naming the file (--check-config, and a reload
// before anything of it is published).
void check_files(const Flags& f);

// The config keys whose values differ between `next` and `running` but take a restart to
// change (listeners, cores, buffer sizes, routes and backends, turning auth or the ACL on or
// off, ...), by their names in the config file.
std::vector<std::string> restart_keys(const Flags& next, const Flags& running);

// `running` with what a reload changes taken from `next`: the endpoint's limits and timeouts,
// the TLS certificates, the auth options (keys, audience, issuer, leeway, token sources, the
// ACL file) when auth or the ACL stays on or off. The rest (restart_keys) stays as it runs.
Flags reloadable(const Flags& running, const Flags& next);

}  // namespace wsedge::app
