#pragma once
// Command-line flags of the wsedge binary.
#include <string>

#include "engine/server.hpp"

namespace wsedge::app {

struct Flags {
  ServerOptions server;
  bool listen_given = false;
  bool help = false;
  bool version = false;
};

// Throws std::invalid_argument with a one-line message for unknown or malformed flags.
Flags parse_flags(int argc, char** argv);
std::string usage();

}  // namespace wsedge::app
