#include "flags.hpp"

#include <charconv>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace wsedge::app {
namespace {

std::uint64_t number(std::string_view flag, std::string_view v, std::uint64_t lo,
                     std::uint64_t hi) {
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || v.empty())
    throw std::invalid_argument(std::string(flag) + ": expected a number, got '" + std::string(v) +
                                "'");
  if (n < lo || n > hi)
    throw std::invalid_argument(std::string(flag) + ": " + std::to_string(n) + " is outside " +
                                std::to_string(lo) + ".." + std::to_string(hi));
  return n;
}

struct Spec {
  const char* name;
  const char* arg;  // null for a switch
  const char* help;
  std::function<std::string(const Flags&)> show_default;
  std::function<void(Flags&, std::string_view)> set;
};

template <class T>
std::string str(T v) {
  return std::to_string(v);
}

constexpr const char* kTlsListen = "0.0.0.0:8443";
constexpr const char* kPlainListen = "127.0.0.1:9001";

// The certificate/key pair a --tls-cert or --tls-key fills: the first one still missing it.
tls::CertKey& tls_pair(Flags& f, bool cert) {
  auto& certs = f.server.tls.certs;
  for (auto& ck : certs) {
    if ((cert ? ck.cert_file : ck.key_file).empty()) return ck;
  }
  return certs.emplace_back();
}

const std::vector<Spec>& specs() {
  static const std::vector<Spec> s = {
      {"--listen", "HOST:PORT",
       "address to listen on; repeat for several (IPv4 and IPv6); port 0 picks a free one",
       [](const Flags&) {
         return std::string(kTlsListen) + " (wss), " + kPlainListen + " with --plain";
       },
       [](Flags& f, std::string_view v) {
         io::Address addr = io::parse_address(v);
         // The first --listen replaces the default; later ones add to it.
         if (!f.listen_given) f.server.listen.clear();
         f.listen_given = true;
         // Twice the same port would open a second set of listeners that splits connections
         // with the first for nothing (several ":0" are fine: each gets its own port).
         for (const io::Address& a : f.server.listen) {
           if (addr.port() != 0 && a.to_string() == addr.to_string())
             throw std::invalid_argument("--listen: " + a.to_string() + " given twice");
         }
         f.server.listen.push_back(addr);
       }},
      {"--reuse-port", nullptr,
       "serve a port another wsedge already serves, sharing its connections (zero-downtime "
       "replacement: start the new one, then SIGTERM the old); without it a served port is "
       "refused with 'address in use'",
       [](const Flags&) { return std::string("off"); },
       [](Flags& f, std::string_view) { f.server.reuse_port = true; }},
      {"--tls-cert", "FILE", "PEM certificate chain; repeat with --tls-key for several names (SNI)",
       [](const Flags&) { return std::string("none"); },
       [](Flags& f, std::string_view v) { tls_pair(f, true).cert_file = std::string(v); }},
      {"--tls-key", "FILE", "PEM private key for the --tls-cert in the same position",
       [](const Flags&) { return std::string("none"); },
       [](Flags& f, std::string_view v) { tls_pair(f, false).key_file = std::string(v); }},
      {"--tls-ticket-rotation", "SECONDS", "lifetime of a session-ticket key",
       [](const Flags& f) { return str(f.server.ticket_rotation_s); },
       [](Flags& f, std::string_view v) {
         f.server.ticket_rotation_s =
             static_cast<unsigned>(number("--tls-ticket-rotation", v, 60, 7 * 86400));
       }},
      {"--plain", nullptr, "serve plain ws:// instead of wss:// (development and benchmarks only)",
       [](const Flags&) { return std::string("off"); },
       [](Flags& f, std::string_view) { f.server.plain = true; }},
      {"--cores", "N", "reactor threads, one pinned per CPU",
       [](const Flags& f) { return str(f.server.cores) + " (online CPUs)"; },
       [](Flags& f, std::string_view v) {
         f.server.cores =
             static_cast<unsigned>(number("--cores", v, 1, server_detail::online_cpus()));
       }},
      {"--buf-count", "N", "provided receive buffers per core (power of two)",
       [](const Flags& f) { return str(f.server.reactor.buf_count); },
       [](Flags& f, std::string_view v) {
         auto n = number("--buf-count", v, 1, 32768);
         if (n & (n - 1)) throw std::invalid_argument("--buf-count: must be a power of two");
         f.server.reactor.buf_count = static_cast<unsigned>(n);
       }},
      {"--buf-size", "BYTES", "size of each receive buffer",
       [](const Flags& f) { return str(f.server.reactor.buf_size); },
       [](Flags& f, std::string_view v) {
         f.server.reactor.buf_size = static_cast<unsigned>(number("--buf-size", v, 256, 1 << 20));
       }},
      {"--ring-entries", "N", "io_uring submission queue entries per core",
       [](const Flags& f) { return str(f.server.reactor.ring_entries); },
       [](Flags& f, std::string_view v) {
         f.server.reactor.ring_entries =
             static_cast<unsigned>(number("--ring-entries", v, 64, 32768));
       }},
      {"--max-connections", "N", "connections per core; more are refused at accept",
       [](const Flags& f) { return str(f.server.reactor.max_connections); },
       [](Flags& f, std::string_view v) {
         f.server.reactor.max_connections =
             static_cast<std::uint32_t>(number("--max-connections", v, 1, 1u << 24));
       }},
      {"--backlog", "N", "listen(2) backlog per core",
       [](const Flags& f) { return str(f.server.reactor.backlog); },
       [](Flags& f, std::string_view v) {
         f.server.reactor.backlog = static_cast<int>(number("--backlog", v, 1, 65535));
       }},
      {"--max-message", "BYTES", "largest message accepted; larger ones close with 1009",
       [](const Flags& f) { return str(f.server.endpoint.max_message); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.max_message = number("--max-message", v, 1, std::uint64_t{1} << 30);
       }},
      {"--max-assembly", "BYTES",
       "bytes all unfinished messages of one core may hold; the client needing more gets 1009",
       [](const Flags& f) { return str(f.server.endpoint.max_assembly_bytes); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.max_assembly_bytes =
             number("--max-assembly", v, 1 << 16, std::uint64_t{1} << 40);
       }},
      {"--max-fragments", "N", "frames one message may arrive in; more close with 1009",
       [](const Flags& f) { return str(f.server.endpoint.max_fragments); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.max_fragments =
             static_cast<std::uint32_t>(number("--max-fragments", v, 1, 1u << 30));
       }},
      {"--max-header", "BYTES", "largest upgrade request; larger ones get 431",
       [](const Flags& f) { return str(f.server.endpoint.max_header_bytes); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.max_header_bytes = number("--max-header", v, 256, 1 << 20);
       }},
      {"--max-outbound", "BYTES",
       "queued output after which a client that does not read is dropped",
       [](const Flags& f) { return str(f.server.endpoint.max_outbound); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.max_outbound =
             number("--max-outbound", v, 1 << 16, std::uint64_t{1} << 32);
       }},
      {"--handshake-timeout", "MS", "time allowed from accept to a complete upgrade request",
       [](const Flags& f) { return str(f.server.endpoint.handshake_timeout_ms); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.handshake_timeout_ms =
             static_cast<std::uint32_t>(number("--handshake-timeout", v, 10, 3600000));
       }},
      {"--ping-interval", "MS",
       "idle time before a ping; no answer within another interval closes; 0 = off",
       [](const Flags& f) { return str(f.server.endpoint.ping_interval_ms); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.ping_interval_ms =
             static_cast<std::uint32_t>(number("--ping-interval", v, 0, 3600000));
       }},
      {"--close-timeout", "MS", "wait for the client's Close, and for its FIN, before dropping it",
       [](const Flags& f) { return str(f.server.endpoint.close_timeout_ms); },
       [](Flags& f, std::string_view v) {
         auto ms = static_cast<std::uint32_t>(number("--close-timeout", v, 10, 600000));
         f.server.endpoint.close_timeout_ms = ms;
         f.server.reactor.linger_ms = ms;
       }},
      {"--help", nullptr, "print this help", [](const Flags&) { return std::string(); },
       [](Flags& f, std::string_view) { f.help = true; }},
      {"--version", nullptr, "print the version", [](const Flags&) { return std::string(); },
       [](Flags& f, std::string_view) { f.version = true; }},
  };
  return s;
}

Flags defaults() {
  Flags f;
  f.server.listen = {io::parse_address(kTlsListen)};
  f.server.cores = server_detail::online_cpus();
  f.server.reactor.linger_ms = f.server.endpoint.close_timeout_ms;
  return f;
}

}  // namespace

Flags parse_flags(int argc, char** argv) {
  Flags f = defaults();
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    std::string_view value;
    bool inline_value = false;
    if (auto eq = a.find('='); eq != std::string_view::npos && a.starts_with("--")) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      inline_value = true;
    }
    const Spec* spec = nullptr;
    for (const Spec& s : specs()) {
      if (a == s.name) spec = &s;
    }
    if (!spec)
      throw std::invalid_argument("unknown flag '" + std::string(argv[i]) + "' (see --help)");
    if (spec->arg && !inline_value) {
      if (i + 1 >= argc)
        throw std::invalid_argument(std::string(spec->name) + ": missing " + spec->arg);
      value = argv[++i];
    } else if (!spec->arg && inline_value) {
      throw std::invalid_argument(std::string(spec->name) + " takes no value");
    }
    spec->set(f, value);
  }
  if (!f.listen_given && f.server.plain) f.server.listen = {io::parse_address(kPlainListen)};
  if (f.help || f.version) return f;
  if (f.server.plain && !f.server.tls.certs.empty())
    throw std::invalid_argument("--plain and --tls-cert exclude each other");
  if (!f.server.plain && f.server.tls.certs.empty())
    throw std::invalid_argument("wss needs --tls-cert FILE --tls-key FILE (or --plain for ws://)");
  for (const auto& ck : f.server.tls.certs) {
    if (ck.cert_file.empty() || ck.key_file.empty())
      throw std::invalid_argument("each --tls-cert needs a matching --tls-key");
  }
  return f;
}

std::string usage() {
  Flags d = defaults();
  std::string out =
      "usage: wsedge --tls-cert FILE --tls-key FILE [flags]\n"
      "       wsedge --plain [flags]\n"
      "A WebSocket edge server on io_uring; serves the built-in echo application.\n"
      "SIGHUP reloads the certificates; SIGTERM drains and stops.\n\n";
  for (const Spec& s : specs()) {
    std::string left = std::string("  ") + s.name + (s.arg ? std::string(" ") + s.arg : "");
    if (left.size() < 28)
      left.resize(28, ' ');
    else
      left += "  ";
    out += left + s.help;
    std::string def = s.show_default(d);
    if (!def.empty()) out += " [default: " + def + "]";
    out += "\n";
  }
  return out;
}

}  // namespace wsedge::app
