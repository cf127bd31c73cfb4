#pragma once
// The command line every baseline server shares: --listen HOST:PORT [--tls-cert F --tls-key F].
#include <cstdio>
#include <cstdlib>
#include <string>

namespace wsedge::bench {

struct ServerArgs {
  std::string host;
  unsigned short port = 0;
  std::string cert, key;  // both empty: plain ws://
};

// Exits with a usage line naming `program` when the arguments are wrong.
inline ServerArgs parse_server_args(int argc, char** argv, const char* program,
                                    bool tls_allowed = true) {
  ServerArgs a;
  std::string listen;
  bool ok = argc % 2 == 1;
  for (int i = 1; ok && i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--listen")
      listen = argv[i + 1];
    else if (flag == "--tls-cert" && tls_allowed)
      a.cert = argv[i + 1];
    else if (flag == "--tls-key" && tls_allowed)
      a.key = argv[i + 1];
    else
      ok = false;
  }
  auto colon = listen.rfind(':');
  if (!ok || colon == std::string::npos || a.cert.empty() != a.key.empty()) {
    std::fprintf(stderr, "usage: %s --listen HOST:PORT%s\n", program,
                 tls_allowed ? " [--tls-cert FILE --tls-key FILE]" : "");
    std::exit(2);
  }
  a.host = listen.substr(0, colon);
  a.port = static_cast<unsigned short>(std::atoi(listen.c_str() + colon + 1));
  return a;
}

}  // namespace wsedge::bench
