#pragma once
// The command line every baseline server shares:
//   --listen HOST:PORT [--tls-cert F --tls-key F] [--deflate] [--broadcast]
#include <cstdio>
#include <cstdlib>
#include <string>

namespace wsedge::bench {

struct ServerArgs {
  std::string host;
  unsigned short port = 0;
  std::string cert, key;  // both empty: plain ws://
  // permessage-deflate offered by a client is accepted (each library's own negotiation).
  bool deflate = false;
  // Fan-out instead of echo: every connection gets a text "ready" when it opens, and every
  // message received is sent to every open connection (wsload fanout's server side).
  bool broadcast = false;
};

// Exits with a usage line naming `program` when the arguments are wrong. `library`: the
// library baselines take TLS, deflate and broadcast; the floor is a bare yardstick and takes none.
inline ServerArgs parse_server_args(int argc, char** argv, const char* program,
                                    bool library = true) {
  ServerArgs a;
  std::string listen;
  bool ok = true;
  for (int i = 1; ok && i < argc; ++i) {
    std::string flag = argv[i];
    bool has_value = i + 1 < argc;
    if (flag == "--listen" && has_value)
      listen = argv[++i];
    else if (!library)
      ok = false;
    else if (flag == "--deflate")
      a.deflate = true;
    else if (flag == "--broadcast")
      a.broadcast = true;
    else if (flag == "--tls-cert" && has_value)
      a.cert = argv[++i];
    else if (flag == "--tls-key" && has_value)
      a.key = argv[++i];
    else
      ok = false;
  }
  auto colon = listen.rfind(':');
  if (!ok || colon == std::string::npos || a.cert.empty() != a.key.empty()) {
    std::fprintf(stderr, "usage: %s --listen HOST:PORT%s\n", program,
                 library ? " [--tls-cert FILE --tls-key FILE] [--deflate] [--broadcast]" : "");
    std::exit(2);
  }
  a.host = listen.substr(0, colon);
  a.port = static_cast<unsigned short>(std::atoi(listen.c_str() + colon + 1));
  return a;
}

}  // namespace wsedge::bench
