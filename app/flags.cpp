#include "flags.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace wsedge::app {
namespace {

const char* deflate_mode_name(ws::DeflateMode m) {
  switch (m) {
    case ws::DeflateMode::kNoContextTakeover:
      return "no-context-takeover";
    case ws::DeflateMode::kContextTakeover:
      return "context-takeover";
    case ws::DeflateMode::kDefault:
    case ws::DeflateMode::kOff:
      break;
  }
  return "off";
}

ws::DeflateMode parse_deflate_mode(std::string_view flag, std::string_view v) {
  for (auto m : {ws::DeflateMode::kOff, ws::DeflateMode::kNoContextTakeover,
                 ws::DeflateMode::kContextTakeover})
    if (v == deflate_mode_name(m)) return m;
  throw std::invalid_argument(std::string(flag)
                                  .append(": off, no-context-takeover or "
                                          "context-takeover, not '")
                                  .append(v)
                                  .append("'"));
}

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

// A flag that takes one of two words: true for `on`.
bool choose(std::string_view flag, std::string_view v, std::string_view off, std::string_view on) {
  if (v != off && v != on)
    throw std::invalid_argument(std::string(flag)
                                    .append(": ")
                                    .append(off)
                                    .append(" or ")
                                    .append(on)
                                    .append(", not '")
                                    .append(v)
                                    .append("'"));
  return v == on;
}

// How often a flag may be given. A config file says a repeatable flag's values as an array; a
// flag that takes one value given an array there is an error, not "the last one wins".
enum Kind : std::uint8_t {
  kOnce,             // on the command line a later value replaces an earlier one
  kRepeatable,       // every value counts
  kCommandLineOnly,  // about the config file or the program, never in a config file
};

struct Spec {
  const char* name;
  const char* arg;  // null for a switch
  const char* help;
  std::function<std::string(const Flags&)> show_default;
  std::function<void(Flags&, std::string_view)> set;
  Kind kind = kOnce;
};

template <class T>
std::string str(T v) {
  return std::to_string(v);
}

// A Z85 key from a key file's "NAME: KEY" line (python -m wsedge_backend.keys writes them).
std::string read_key(std::string_view file, std::string_view name) {
  std::ifstream in{std::string(file)};
  if (!in) throw std::invalid_argument("cannot read key file " + std::string(file));
  std::string line;
  std::string prefix = std::string(name) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) != 0) continue;
    std::string key = line.substr(prefix.size());
    key.erase(0, key.find_first_not_of(" \t"));
    key.erase(key.find_last_not_of(" \t\r") + 1);
    if (key.size() != 40)
      throw std::invalid_argument(std::string(file) + ": the " + std::string(name) +
                                  " key is not 40 Z85 characters");
    return key;
  }
  throw std::invalid_argument(std::string(file) + ": no '" + prefix + " KEY' line");
}

bool local_endpoint(std::string_view e) {
  if (e.starts_with("inproc://") || e.starts_with("ipc://")) return true;
  for (std::string_view host : {"tcp://127.", "tcp://localhost:", "tcp://[::1]:"}) {
    if (e.starts_with(host)) return true;
  }
  return false;
}

// Backends off this host are reached with CURVE or not at all (docs/BRIDGE-PROTOCOL.md §10).
void check_bridge(const Flags& f) {
  // Past --max-outbound the engine drops a client at once; the bridge's slow policy must get
  // there first.
  if (f.bridge.output_budget > f.server.endpoint.max_outbound)
    throw std::invalid_argument("--output-budget must not exceed --max-outbound");
  const bridge::CurveKeys& k = f.bridge.curve;
  if (k.secret_key.empty() != k.server_key.empty())
    throw std::invalid_argument("--backend-curve-key and --backend-curve-server-key go together");
  std::vector<std::string> all = f.bridge.publish;
  for (const bridge::Route& r : f.bridge.routes)
    all.insert(all.end(), r.endpoints.begin(), r.endpoints.end());
  for (const std::string& e : all) {
    if (!local_endpoint(e) && !k.enabled())
      throw std::invalid_argument(e +
                                  " is off this host: backends there are reached with CURVE "
                                  "(--backend-curve-key, --backend-curve-server-key)");
  }
}

// Keys imply --auth required; a mode that verifies tokens needs a key to verify them with.
void check_auth(Flags& f) {
  const auth::KeySource& k = f.auth.keys;
  bool keys = !k.secret_files.empty() || !k.public_key_files.empty() || !k.jwks_files.empty();
  if (!f.auth_mode_given && keys) f.auth.mode = auth::Mode::kRequired;
  if (f.auth.mode != auth::Mode::kOff && !keys)
    throw std::invalid_argument(
        "--auth required/optional needs a key: --auth-hs256-secret-file, --auth-public-key or "
        "--auth-jwks");
  if (f.echo && f.auth.enabled())
    throw std::invalid_argument("--auth and --acl apply to the bridge, not --app echo");
  if (f.auth.mode == auth::Mode::kOff) return;
  const auth::TokenSources& s = f.auth.sources;
  // With none, every client is refused (required) or anonymous (optional), with no hint why.
  if (!s.header && !s.protocol && !s.cookie && !s.query)
    throw std::invalid_argument(
        "--auth-token-from: at least one of header, protocol, cookie, query");
  // A header a token may come in, forwarded in OPEN, would hand the token to every backend
  // (docs/AUTH.md §3: a token never reaches them).
  for (const std::string& h : f.bridge.forward_headers) {
    if ((h == "authorization" && s.header) || (h == "sec-websocket-protocol" && s.protocol) ||
        (h == "cookie" && s.cookie))
      throw std::invalid_argument(std::string("--forward-header ")
                                      .append(h)
                                      .append(" would send tokens to backends; leave it out, or "
                                              "leave its place out of --auth-token-from"));
  }
}

// "ENDPOINT[,ENDPOINT...][;outage=hold|refuse][;slow=close|drop][;deflate=MODE]..."
// (docs/BRIDGE-PROTOCOL.md §9, docs/DEFLATE.md §1).
bridge::Route parse_route(std::string_view flag, std::string_view path, std::string_view v) {
  bridge::Route r;
  r.path = std::string(path);
  if (r.path.empty() || r.path[0] != '/')
    throw std::invalid_argument(std::string(flag) + ": a route's path starts with '/'");
  std::string_view endpoints = v.substr(0, v.find(';'));
  for (std::string_view rest = v.substr(endpoints.size()); !rest.empty();) {
    rest.remove_prefix(1);
    std::string_view opt = rest.substr(0, rest.find(';'));
    rest.remove_prefix(opt.size());
    if (opt == "outage=hold")
      r.outage = bridge::Outage::kHold;
    else if (opt == "outage=refuse")
      r.outage = bridge::Outage::kRefuse;
    else if (opt == "slow=close")
      r.slow = bridge::SlowPolicy::kClose;
    else if (opt == "slow=drop")
      r.slow = bridge::SlowPolicy::kDrop;
    else if (opt == "control=on" || opt == "control=off")
      r.control = opt == "control=on";
    else if (opt.starts_with("deflate="))
      r.deflate = parse_deflate_mode(std::string(flag).append(" deflate="), opt.substr(8));
    else if (opt.starts_with("protocols=")) {
      for (std::string_view rest = opt.substr(10); !rest.empty();) {
        std::string_view name = rest.substr(0, rest.find('|'));
        rest.remove_prefix(std::min(rest.size(), name.size() + 1));
        if (name.empty()) throw std::invalid_argument(std::string(flag) + ": empty subprotocol");
        r.protocols.emplace_back(name);
      }
    } else
      throw std::invalid_argument(std::string(flag) + ": unknown option '" + std::string(opt) +
                                  "' (outage=hold|refuse, slow=close|drop, protocols=A|B, "
                                  "control=on|off, deflate=MODE)");
  }
  while (!endpoints.empty()) {
    std::string_view e = endpoints.substr(0, endpoints.find(','));
    endpoints.remove_prefix(std::min(endpoints.size(), e.size() + 1));
    if (e.find("://") == std::string_view::npos)
      throw std::invalid_argument(std::string(flag) + ": '" + std::string(e) +
                                  "' is not a ZeroMQ endpoint (tcp://HOST:PORT, ipc://PATH)");
    r.endpoints.emplace_back(e);
  }
  if (r.endpoints.empty()) throw std::invalid_argument(std::string(flag) + ": no endpoint");
  if (r.endpoints.size() > 64)
    throw std::invalid_argument(std::string(flag) + ": at most 64 backends per route");
  return r;
}

void add_route(Flags& f, bridge::Route r) {
  for (const bridge::Route& have : f.bridge.routes) {
    if (have.path == r.path) throw std::invalid_argument("route " + r.path + " given twice");
  }
  f.bridge.routes.push_back(std::move(r));
}

constexpr const char* kTlsListen = "0.0.0.0:8443";
constexpr const char* kPlainListen = "127.0.0.1:9001";
constexpr const char* kAdminListen = "127.0.0.1:9090";

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
      {"--listen", "HOST:PORT[;proxy-protocol]",
       "address to listen on; repeat for several (IPv4 and IPv6); port 0 picks a free one; "
       "';proxy-protocol' (quoted: ';' ends a shell command) expects a PROXY protocol header "
       "on every connection there",
       [](const Flags&) {
         return std::string(kTlsListen) + " (wss), " + kPlainListen + " with --plain";
       },
       [](Flags& f, std::string_view v) {
         std::size_t semi = v.find(';');
         std::string_view option = semi == std::string_view::npos ? "" : v.substr(semi + 1);
         if (semi != std::string_view::npos && option != "proxy-protocol")
           throw std::invalid_argument("--listen: unknown option '" + std::string(option) +
                                       "' (HOST:PORT or HOST:PORT;proxy-protocol)");
         io::Address addr = io::parse_address(v.substr(0, semi));
         // The first --listen replaces the default; later ones add to it.
         if (!f.listen_given) {
           f.server.listen.clear();
           f.server.proxy_protocol.clear();
         }
         f.listen_given = true;
         // Twice the same port would open a second set of listeners that splits connections
         // with the first for nothing (several ":0" are fine: each gets its own port).
         for (const io::Address& a : f.server.listen) {
           if (addr.port() != 0 && a.to_string() == addr.to_string())
             throw std::invalid_argument("--listen: " + a.to_string() + " given twice");
         }
         f.server.listen.push_back(addr);
         f.server.proxy_protocol.push_back(!option.empty());
       },
       kRepeatable},
      {"--reuse-port", nullptr,
       "serve a port another wsedge already serves, sharing its connections (zero-downtime "
       "replacement: start the new one, then SIGTERM the old); without it a served port is "
       "refused with 'address in use'",
       [](const Flags&) { return std::string("off"); },
       [](Flags& f, std::string_view) { f.server.reuse_port = true; }},
      {"--tls-cert", "FILE", "PEM certificate chain; repeat with --tls-key for several names (SNI)",
       [](const Flags&) { return std::string("none"); },
       [](Flags& f, std::string_view v) { tls_pair(f, true).cert_file = std::string(v); },
       kRepeatable},
      {"--tls-key", "FILE", "PEM private key for the --tls-cert in the same position",
       [](const Flags&) { return std::string("none"); },
       [](Flags& f, std::string_view v) { tls_pair(f, false).key_file = std::string(v); },
       kRepeatable},
      {"--tls-ticket-rotation", "SECONDS", "lifetime of a session-ticket key",
       [](const Flags& f) { return str(f.server.ticket_rotation_s); },
       [](Flags& f, std::string_view v) {
         f.server.ticket_rotation_s =
             static_cast<unsigned>(number("--tls-ticket-rotation", v, 60, 7 * 86400));
       }},
      {"--tls-record-layer", "openssl|own",
       "after a TLS 1.3 handshake: keep OpenSSL's record layer, or free its per-connection state "
       "(~14 KB) and seal and open records in wsedge (TLS 1.2 always keeps OpenSSL's)",
       [](const Flags& f) {
         return std::string(f.server.endpoint.tls_own_records ? "own" : "openssl");
       },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.tls_own_records = choose("--tls-record-layer", v, "openssl", "own");
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
      {"--buf-count", "N",
       "most receive buffers provided per core (power of two); consumed incrementally, 128 are "
       "provided at first and doubled when a turn runs them dry, else all at start",
       [](const Flags& f) {
         return f.server.reactor.buf_count ? str(f.server.reactor.buf_count)
                                           : std::string("512 (4096 when not incremental)");
       },
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
      {"--buf-incremental", "auto|off",
       "let small reads share receive buffers (IOU_PBUF_RING_INC, Linux 6.12): auto uses it "
       "where the kernel has it",
       [](const Flags& f) {
         return std::string(f.server.reactor.buf_incremental ? "auto" : "off");
       },
       [](Flags& f, std::string_view v) {
         f.server.reactor.buf_incremental = choose("--buf-incremental", v, "off", "auto");
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
      {"--first-byte-timeout", "MS",
       "drop a connection that sends nothing this long after accept (no answer); at most "
       "--handshake-timeout (the default, over a shorter one, is off)",
       [](const Flags& f) { return str(f.server.endpoint.first_byte_timeout_ms); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.first_byte_timeout_ms =
             static_cast<std::uint32_t>(number("--first-byte-timeout", v, 10, 3600000));
         f.first_byte_given = true;
       }},
      {"--min-recv-rate", "BYTES/S",
       "while an upgrade request or a frame is incomplete, bytes a second it must arrive at "
       "(after --recv-rate-grace), else 408 or Close 1008; 0 = off",
       [](const Flags& f) { return str(f.server.endpoint.min_recv_rate); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.min_recv_rate =
             static_cast<std::uint32_t>(number("--min-recv-rate", v, 0, 1u << 30));
       }},
      {"--recv-rate-grace", "MS",
       "how long a request or frame may be incomplete before its rate counts",
       [](const Flags& f) { return str(f.server.endpoint.recv_rate_grace_ms); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.recv_rate_grace_ms =
             static_cast<std::uint32_t>(number("--recv-rate-grace", v, 0, 3600000));
       }},
      {"--max-connections-per-ip", "N",
       "connections (handshaking or open) one address may hold per core; more get 503; 0 = off. "
       "Per core: with N cores an address may reach N times this",
       [](const Flags& f) { return str(f.server.endpoint.max_conns_per_ip); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.max_conns_per_ip =
             static_cast<std::uint32_t>(number("--max-connections-per-ip", v, 0, 1u << 24));
       }},
      {"--handshake-rate-per-ip", "N/S",
       "upgrades a second one address may make per core; more get 429 with Retry-After; 0 = off",
       [](const Flags& f) { return str(f.server.endpoint.handshake_rate_per_ip); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.handshake_rate_per_ip =
             static_cast<std::uint32_t>(number("--handshake-rate-per-ip", v, 0, 1u << 24));
       }},
      {"--handshake-burst-per-ip", "N", "upgrades one address may make at once",
       [](const Flags&) { return std::string("2x --handshake-rate-per-ip"); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.handshake_burst_per_ip =
             static_cast<std::uint32_t>(number("--handshake-burst-per-ip", v, 1, 1u << 24));
       }},
      {"--max-message-rate", "N/S",
       "messages a second one client may send; more close with 1008; 0 = off",
       [](const Flags& f) { return str(f.server.endpoint.max_msg_rate); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.max_msg_rate =
             static_cast<std::uint32_t>(number("--max-message-rate", v, 0, 1u << 30));
       }},
      {"--message-burst", "N", "messages one client may send at once",
       [](const Flags&) { return std::string("--max-message-rate"); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.msg_burst =
             static_cast<std::uint32_t>(number("--message-burst", v, 1, 1u << 30));
       }},
      {"--max-byte-rate", "BYTES/S",
       "message payload bytes a second one client may send; more close with 1008; 0 = off",
       [](const Flags& f) { return str(f.server.endpoint.max_byte_rate); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.max_byte_rate = number("--max-byte-rate", v, 0, std::uint64_t{1} << 40);
       }},
      {"--byte-burst", "BYTES",
       "payload bytes one client may send at once; a larger message always closes",
       [](const Flags&) { return std::string("--max-byte-rate"); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.byte_burst = number("--byte-burst", v, 1, std::uint64_t{1} << 40);
       }},
      {"--allowed-origin", "ORIGIN",
       "an Origin upgrades may come from (https://example.com, http://localhost:8080; "
       "https://*.example.com for its subdomains); repeatable; others get 403. A request "
       "without Origin is not from a browser and passes: Origin defends browsers only",
       [](const Flags&) { return std::string("any"); },
       [](Flags& f, std::string_view v) {
         if (v.find("://") == std::string_view::npos || v.ends_with("/"))
           throw std::invalid_argument("--allowed-origin: SCHEME://HOST[:PORT], got '" +
                                       std::string(v) + "'");
         f.server.endpoint.allowed_origins.emplace_back(v);
       },
       kRepeatable},
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
      {"--app", "echo|bridge",
       "what serves clients: the bridge to backends (and, with no --backend or --route, the "
       "embedded chat), or the built-in echo (conformance tests, benchmarks)",
       [](const Flags&) { return std::string("bridge"); },
       [](Flags& f, std::string_view v) { f.echo = choose("--app", v, "bridge", "echo"); }},
      {"--backend", "ENDPOINT[,...][;OPTS]",
       "backends for every path no --route names; OPTS: outage=hold|refuse, slow=close|drop, "
       "protocols=A|B (subprotocols the backends speak, preferred first), control=on (clients "
       "subscribe, publish and refresh their token with wsedge: commands, docs/AUTH.md), "
       "deflate=off|no-context-takeover|context-takeover (instead of --deflate)",
       [](const Flags&) { return std::string("the embedded chat over inproc://"); },
       [](Flags& f, std::string_view v) { add_route(f, parse_route("--backend", "/", v)); }},
      {"--route", "PATH=ENDPOINT[,...][;OPTS]",
       "backends for request paths under PATH (the longest match wins); repeatable",
       [](const Flags&) { return std::string("none"); },
       [](Flags& f, std::string_view v) {
         auto eq = v.find('=');
         if (eq == std::string_view::npos)
           throw std::invalid_argument("--route: expected PATH=ENDPOINT, got '" + std::string(v) +
                                       "'");
         add_route(f, parse_route("--route", v.substr(0, eq), v.substr(eq + 1)));
       },
       kRepeatable},
      {"--publish", "ENDPOINT",
       "a PUB (or broker XPUB) endpoint channel publishes come from; repeatable",
       [](const Flags&) { return std::string("the embedded chat's, without --backend/--route"); },
       [](Flags& f, std::string_view v) { f.bridge.publish.emplace_back(v); }, kRepeatable},
      {"--node-name", "NAME", "this node's name in backends' routing ids (NAME/CORE)",
       [](const Flags&) { return std::string("the host name"); },
       [](Flags& f, std::string_view v) {
         if (v.empty() || v.size() > 64 || v.find('/') != std::string_view::npos)
           throw std::invalid_argument("--node-name: 1-64 characters, no '/'");
         f.bridge.node_name = std::string(v);
       }},
      {"--forward-header", "NAME",
       "a request header OPEN carries to backends; repeatable (the first replaces the default)",
       [](const Flags& f) {
         std::string all;
         for (const std::string& h : f.bridge.forward_headers) all += (all.empty() ? "" : ",") + h;
         return all;
       },
       [](Flags& f, std::string_view v) {
         if (!f.forward_headers_given) f.bridge.forward_headers.clear();
         f.forward_headers_given = true;
         std::string h(v);
         for (char& ch : h) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
         f.bridge.forward_headers.push_back(h);
       },
       kRepeatable},
      {"--output-budget", "BYTES",
       "output queued to one client past which the route's slow policy applies",
       [](const Flags& f) { return str(f.bridge.output_budget); },
       [](Flags& f, std::string_view v) {
         f.bridge.output_budget = number("--output-budget", v, 1024, std::uint64_t{1} << 32);
       }},
      {"--backend-grace", "MS", "how long clients are held while no backend of their route is up",
       [](const Flags& f) { return str(f.bridge.grace_ms); },
       [](Flags& f, std::string_view v) {
         f.bridge.grace_ms = static_cast<std::uint32_t>(number("--backend-grace", v, 0, 86400000));
       }},
      {"--backend-close-spread", "MS",
       "after the grace, held clients are closed (1013) over this long",
       [](const Flags& f) { return str(f.bridge.close_spread_ms); },
       [](Flags& f, std::string_view v) {
         f.bridge.close_spread_ms =
             static_cast<std::uint32_t>(number("--backend-close-spread", v, 0, 3600000));
       }},
      {"--backend-hwm", "N", "messages queued per backend socket before clients are paused",
       [](const Flags& f) { return str(f.bridge.hwm); },
       [](Flags& f, std::string_view v) {
         f.bridge.hwm = static_cast<int>(number("--backend-hwm", v, 1, 1 << 24));
       }},
      {"--backend-window", "N",
       "events per core and backend kept until the backend counts them (resent if it fails)",
       [](const Flags& f) { return str(f.bridge.window_events); },
       [](Flags& f, std::string_view v) {
         f.bridge.window_events =
             static_cast<std::uint32_t>(number("--backend-window", v, 1, 1 << 24));
       }},
      {"--beat-interval", "MS", "state beat to backends, and ZMTP heartbeat interval",
       [](const Flags& f) { return str(f.bridge.beat_ms); },
       [](Flags& f, std::string_view v) {
         f.bridge.beat_ms = static_cast<std::uint32_t>(number("--beat-interval", v, 100, 3600000));
         f.bridge.heartbeat_ms = f.bridge.beat_ms;
       }},
      {"--backend-curve-key", "FILE",
       "this node's CURVE key pair (lines 'public: Z85' and 'secret: Z85'); needed for backends "
       "off localhost",
       [](const Flags&) { return std::string("none"); },
       [](Flags& f, std::string_view v) {
         f.bridge.curve.public_key = read_key(v, "public");
         f.bridge.curve.secret_key = read_key(v, "secret");
       }},
      {"--backend-curve-server-key", "FILE", "the backends' CURVE public key ('public: Z85')",
       [](const Flags&) { return std::string("none"); },
       [](Flags& f, std::string_view v) { f.bridge.curve.server_key = read_key(v, "public"); }},
      {"--auth", "required|optional|off",
       "tokens at the upgrade (docs/AUTH.md); optional admits anonymous clients with "
       "--auth-anonymous-role",
       [](const Flags&) { return std::string("required when a key is given, else off"); },
       [](Flags& f, std::string_view v) {
         if (v == "required")
           f.auth.mode = auth::Mode::kRequired;
         else if (v == "optional")
           f.auth.mode = auth::Mode::kOptional;
         else if (v == "off")
           f.auth.mode = auth::Mode::kOff;
         else
           throw std::invalid_argument("--auth: required, optional or off, not '" + std::string(v) +
                                       "'");
         f.auth_mode_given = true;
       }},
      {"--auth-hs256-secret-file", "FILE", "HS256 secret (>= 32 bytes); kid: the file's stem",
       [](const Flags&) { return std::string("none"); },
       [](Flags& f, std::string_view v) {
         f.auth.keys.secret_files.emplace_back(auth::Alg::kHS256, std::string(v));
       },
       kRepeatable},
      {"--auth-hs384-secret-file", "FILE", "HS384 secret (>= 48 bytes)",
       [](const Flags&) { return std::string("none"); },
       [](Flags& f, std::string_view v) {
         f.auth.keys.secret_files.emplace_back(auth::Alg::kHS384, std::string(v));
       },
       kRepeatable},
      {"--auth-hs512-secret-file", "FILE", "HS512 secret (>= 64 bytes)",
       [](const Flags&) { return std::string("none"); },
       [](Flags& f, std::string_view v) {
         f.auth.keys.secret_files.emplace_back(auth::Alg::kHS512, std::string(v));
       },
       kRepeatable},
      {"--auth-public-key", "FILE[;alg=PS256]",
       "PEM public key, repeatable: EC P-256/P-384 (ES256/384), Ed25519 (EdDSA), RSA (RS256, "
       "or PS256 when named); kid: the file's stem",
       [](const Flags&) { return std::string("none"); },
       [](Flags& f, std::string_view v) { f.auth.keys.public_key_files.emplace_back(v); },
       kRepeatable},
      {"--auth-jwks", "FILE", "a JWK set (RFC 7517) of verification keys, chosen by kid",
       [](const Flags&) { return std::string("none"); },
       [](Flags& f, std::string_view v) { f.auth.keys.jwks_files.emplace_back(v); }, kRepeatable},
      {"--auth-audience", "AUD", "accepted `aud` (repeatable); tokens must name one of them",
       [](const Flags&) { return std::string("not checked"); },
       [](Flags& f, std::string_view v) { f.auth.verify.audiences.emplace_back(v); }, kRepeatable},
      {"--auth-issuer", "ISS", "required `iss`",
       [](const Flags&) { return std::string("not checked"); },
       [](Flags& f, std::string_view v) { f.auth.verify.issuer = v; }},
      {"--auth-leeway", "SECONDS", "clock skew allowed on exp, nbf and iat",
       [](const Flags& f) { return str(f.auth.verify.leeway_s); },
       [](Flags& f, std::string_view v) {
         f.auth.verify.leeway_s = static_cast<std::uint32_t>(number("--auth-leeway", v, 0, 3600));
       }},
      {"--auth-max-token", "BYTES", "longer tokens are refused before any decoding",
       [](const Flags& f) { return str(f.auth.verify.max_token); },
       [](Flags& f, std::string_view v) {
         f.auth.verify.max_token = number("--auth-max-token", v, 256, 65536);
       }},
      {"--auth-anonymous-role", "ROLE", "the role of clients without a token (--auth optional)",
       [](const Flags& f) { return f.auth.anonymous_role; },
       [](Flags& f, std::string_view v) { f.auth.anonymous_role = v; }},
      {"--auth-token-from", "LIST",
       "where tokens are looked for, in this order: header (Authorization: Bearer), protocol "
       "(Sec-WebSocket-Protocol bearer.<token>), cookie, query (?token=)",
       [](const Flags&) { return std::string("header,protocol,cookie,query"); },
       [](Flags& f, std::string_view v) {
         auth::TokenSources& s = f.auth.sources;
         s.header = s.protocol = s.cookie = s.query = false;
         for (std::string_view rest = v; !rest.empty();) {
           std::string_view name = rest.substr(0, rest.find(','));
           rest.remove_prefix(std::min(rest.size(), name.size() + 1));
           bool* on = name == "header"     ? &s.header
                      : name == "protocol" ? &s.protocol
                      : name == "cookie"   ? &s.cookie
                      : name == "query"    ? &s.query
                                           : nullptr;
           if (!on)
             throw std::invalid_argument(
                 "--auth-token-from: header, protocol, cookie or query, "
                 "not '" +
                 std::string(name) + "'");
           *on = true;
         }
       }},
      {"--auth-cookie", "NAME", "the cookie a token may come in",
       [](const Flags& f) { return f.auth.sources.cookie_name; },
       [](Flags& f, std::string_view v) { f.auth.sources.cookie_name = v; }},
      {"--acl", "FILE", "access control list (TOML, docs/AUTH.md §6); SIGHUP reloads it",
       [](const Flags&) { return std::string("none: everything allowed"); },
       [](Flags& f, std::string_view v) { f.auth.acl_file = v; }},
      // --- operations: metrics and the admin port ---
      {"--admin", "HOST:PORT",
       "admin port (plain HTTP: /metrics, /healthz, /readyz; docs/OPERATIONS.md §1); 'off' "
       "disables it; port 0 picks a free one",
       [](const Flags&) { return std::string(kAdminListen) + " (waited for if in use)"; },
       [](Flags& f, std::string_view v) {
         f.admin.enabled = v != "off";
         if (f.admin.enabled) f.admin.address = io::parse_address(v);
         f.admin.address_given = true;
       }},
      {"--ready-needs-backends", nullptr,
       "bridge: /readyz answers 503 while some route has no backend up on some core",
       [](const Flags&) { return std::string("off"); },
       [](Flags& f, std::string_view) { f.ready_needs_backends = true; }},
      // --- operations: logs ---
      {"--log-level", "LEVEL",
       "error, warn, info or debug: lines above it are not written (docs/OPERATIONS.md §2)",
       [](const Flags& f) { return std::string(log::level_name(f.log_level)); },
       [](Flags& f, std::string_view v) {
         if (!log::parse_level(v, f.log_level))
           throw std::invalid_argument(
               std::string("--log-level: error, warn, info or debug, not '").append(v).append("'"));
       }},
      {"--log-format", "FORMAT", "json (one object a line) or logfmt",
       [](const Flags& f) {
         return std::string(f.log_format == log::Format::kJson ? "json" : "logfmt");
       },
       [](Flags& f, std::string_view v) {
         if (!log::parse_format(v, f.log_format))
           throw std::invalid_argument(
               std::string("--log-format: json or logfmt, not '").append(v).append("'"));
       }},
      {"--access-log", nullptr,
       "a line (event \"access\") per finished WebSocket connection, whatever --log-level says",
       [](const Flags& f) { return std::string(f.server.endpoint.access_log ? "on" : "off"); },
       [](Flags& f, std::string_view) { f.server.endpoint.access_log = true; }},
      {"--access-log-rate", "N",
       "access lines a second per core at most; the next one counts those suppressed",
       [](const Flags& f) { return str(f.server.endpoint.access_log_rate); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.access_log_rate =
             static_cast<std::uint32_t>(number("--access-log-rate", v, 1, 1000000));
       }},
      // --- compression (docs/DEFLATE.md) ---
      {"--deflate", "off|no-context-takeover|context-takeover",
       "permessage-deflate: off; each message compressed on its own both ways (no state per "
       "connection); or zlib streams per connection where the client allows and "
       "--deflate-context-memory has room",
       [](const Flags& f) {
         return std::string(deflate_mode_name(f.server.endpoint.deflate.mode));
       },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.deflate.mode = parse_deflate_mode("--deflate", v);
       }},
      {"--deflate-min-size", "BYTES", "messages smaller than this are sent uncompressed",
       [](const Flags& f) { return str(f.server.endpoint.deflate.min_size); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.deflate.min_size =
             static_cast<std::uint32_t>(number("--deflate-min-size", v, 0, 1u << 30));
       }},
      {"--deflate-level", "N", "compression level, 1 (fastest) to 9 (smallest)",
       [](const Flags& f) { return str(f.server.endpoint.deflate.level); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.deflate.level = static_cast<int>(number("--deflate-level", v, 1, 9));
       }},
      {"--deflate-context-memory", "BYTES",
       "per core: zlib state of context-takeover connections; past it new connections get no "
       "context takeover",
       [](const Flags& f) { return str(f.server.endpoint.deflate.context_memory); },
       [](Flags& f, std::string_view v) {
         f.server.endpoint.deflate.context_memory =
             number("--deflate-context-memory", v, 0, std::uint64_t{1} << 40);
       }},
      // --- operations: config file ---
      {"--config", "FILE",
       "a TOML config file: any flag but --config, --check-config, --help and --version, by its "
       "name without '--' (docs/OPERATIONS.md, section 3); flags given here replace the file's "
       "values; SIGHUP reads it again",
       [](const Flags&) { return std::string("none"); },
       [](Flags& f, std::string_view v) { f.config_file = v; }, kCommandLineOnly},
      {"--check-config", nullptr,
       "check the flags and the config file and load the files they name (certificates, keys, "
       "the ACL), print 'config ok' and exit 0; or print what is wrong and exit 2",
       [](const Flags&) { return std::string(); },
       [](Flags& f, std::string_view) { f.check_config = true; }, kCommandLineOnly},
      // --- operations: drain ---
      {"--drain-timeout", "MS",
       "SIGTERM: stop accepting, then close every client with 1001 spread evenly over this "
       "long (so they do not all reconnect at once), then exit; SIGINT closes them at once",
       [](const Flags& f) { return str(f.server.drain_ms); },
       [](Flags& f, std::string_view v) {
         f.server.drain_ms = static_cast<std::uint32_t>(number("--drain-timeout", v, 0, 3600000));
       }},
      // --- operations: PROXY protocol ---
      {"--proxy-protocol", nullptr,
       "every listener expects a PROXY protocol header (v1 or v2, HAProxy's send-proxy or "
       "send-proxy-v2) before TLS and the upgrade: the client's address it names is the one "
       "limits, logs and backends see; a connection without a valid one is closed. Only where "
       "every connection comes through the proxy (docs/OPERATIONS.md)",
       [](const Flags&) {
         return std::string("off; per listener: --listen 'HOST:PORT;proxy-protocol'");
       },
       [](Flags& f, std::string_view) { f.proxy_protocol = true; }},
      {"--help", nullptr, "print this help", [](const Flags&) { return std::string(); },
       [](Flags& f, std::string_view) { f.help = true; }, kCommandLineOnly},
      {"--version", nullptr, "print the version", [](const Flags&) { return std::string(); },
       [](Flags& f, std::string_view) { f.version = true; }, kCommandLineOnly},
  };
  return s;
}

Flags defaults() {
  Flags f;
  f.server.listen = {io::parse_address(kTlsListen)};
  f.admin.address = io::parse_address(kAdminListen);
  f.server.cores = server_detail::online_cpus();
  f.server.reactor.linger_ms = f.server.endpoint.close_timeout_ms;
  // Every browser offers it; without context takeover it costs an idle connection nothing.
  f.server.endpoint.deflate.mode = ws::DeflateMode::kNoContextTakeover;
  return f;
}

}  // namespace

namespace {

// One value for a flag, from the command line or the config file: both feed the same loop
// (apply_settings), so a file and the flags can never disagree on what a value means.
struct Setting {
  const Spec* spec;
  std::string value;  // empty for a switch
  std::string where;  // "FILE:LINE:COLUMN: KEY: " for a file's value; empty for the command line
  // The file's position, to apply its values in the order written (toml++ iterates a table
  // by key).
  std::uint32_t line = 0, column = 0;
};

const Spec* find_spec(std::string_view name) {
  for (const Spec& s : specs()) {
    if (name == s.name) return &s;
  }
  return nullptr;
}

std::vector<Setting> from_args(std::span<const std::string> args) {
  std::vector<Setting> out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    std::string_view value;
    bool inline_value = false;
    if (auto eq = a.find('='); eq != std::string_view::npos && a.starts_with("--")) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      inline_value = true;
    }
    const Spec* spec = find_spec(a);
    if (!spec) throw std::invalid_argument("unknown flag '" + args[i] + "' (see --help)");
    if (spec->arg && !inline_value) {
      if (i + 1 >= args.size())
        throw std::invalid_argument(std::string(spec->name) + ": missing " + spec->arg);
      value = args[++i];
    } else if (!spec->arg && inline_value) {
      throw std::invalid_argument(std::string(spec->name) + " takes no value");
    }
    out.push_back({spec, std::string(value), {}});
  }
  return out;
}

// Reads a config file into settings. The one mapping rule: a key's path, its tables' names and
// its own joined with '-', is the flag's name without "--" ([auth] hs256-secret-file and
// auth.hs256-secret-file are --auth-hs256-secret-file). Every error found is reported, each
// with FILE:LINE:COLUMN and the key; a syntax error alone throws at once.
class ConfigReader {
 public:
  explicit ConfigReader(const std::string& path) : path_(path) {}

  // The file's settings, and in `errors` what is wrong with the rest (parsing stops at a
  // syntax error; anything else is reported for every key that has it).
  std::vector<Setting> read(std::string& errors) {
    toml::table doc;
    try {
      doc = toml::parse(text(), path_);
    } catch (const toml::parse_error& e) {
      throw std::invalid_argument(at(e.source()).append(e.description()));
    }
    walk(doc, "");
    std::stable_sort(errors_.begin(), errors_.end());
    for (const auto& e : errors_) errors.append(errors.empty() ? "" : "\n").append(e.second);
    std::stable_sort(out_.begin(), out_.end(), [](const Setting& a, const Setting& b) {
      return std::pair{a.line, a.column} < std::pair{b.line, b.column};
    });
    return std::move(out_);
  }

 private:
  std::string text() const {
    // stdio, as the ACL file: an ifstream on a directory "opens" and reads as empty, which is
    // a valid config that says nothing.
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path_.c_str(), "rb"),
                                                      &std::fclose);
    std::string text;
    if (f) {
      char buf[4096];
      for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f.get())) > 0;) text.append(buf, n);
    }
    if (!f || std::ferror(f.get()))
      throw std::invalid_argument(
          std::string(path_).append(": cannot read: ").append(std::strerror(errno)));
    return text;
  }

  std::string at(const toml::source_region& r) const {
    return std::string(path_)
        .append(":")
        .append(std::to_string(r.begin.line))
        .append(":")
        .append(std::to_string(r.begin.column))
        .append(": ");
  }

  void fail(const toml::source_region& r, const std::string& key, std::string_view what) {
    errors_.emplace_back(std::pair{r.begin.line, r.begin.column},
                         at(r).append(key).append(": ").append(what));
  }

  void walk(const toml::table& t, const std::string& prefix) {
    for (auto&& [k, node] : t) {
      std::string key =
          prefix.empty() ? std::string(k.str()) : std::string(prefix).append("-").append(k.str());
      if (const toml::table* sub = node.as_table()) {
        walk(*sub, key);
        continue;
      }
      const Spec* spec = find_spec(std::string("--").append(key));
      if (!spec || spec->kind == kCommandLineOnly) {
        fail(k.source(), key,
             spec ? "only on the command line"
                  : "unknown key: no flag --" + key + " (see wsedge --help)");
        continue;
      }
      if (spec->kind == kOnce) {
        // Tables are walked by name, not in file order: the later of the two is the error.
        auto [it, fresh] = once_.try_emplace(spec, k.source());
        if (!fresh) {
          const toml::source_region* first = &it->second;
          const toml::source_region* again = &k.source();
          if (std::pair{again->begin.line, again->begin.column} <
              std::pair{first->begin.line, first->begin.column})
            std::swap(first, again);
          std::string was = at(*first);
          fail(*again, key, "given twice (first at " + was.substr(0, was.size() - 2) + ")");
          continue;
        }
      }
      const toml::array* list = node.as_array();
      if (!list) {
        value(*spec, key, node);
      } else if (spec->kind != kRepeatable) {
        fail(node.source(), key, "takes one value, not an array");
      } else {
        for (const toml::node& e : *list) value(*spec, key, e);
      }
    }
  }

  // A string or an integer for a flag with a value; true or false for a switch (false: as if
  // not given, so a file can spell out the default).
  void value(const Spec& spec, const std::string& key, const toml::node& n) {
    const toml::source_region& r = n.source();
    Setting s{&spec, {}, at(r).append(key).append(": "), r.begin.line, r.begin.column};
    if (!spec.arg) {
      if (!n.is_boolean()) return fail(r, key, "a switch: true or false");
      if (n.as_boolean()->get()) out_.push_back(std::move(s));
      return;
    }
    if (const toml::value<std::string>* v = n.as_string())
      s.value = v->get();
    else if (const toml::value<std::int64_t>* i = n.as_integer())
      s.value = std::to_string(i->get());
    else
      return fail(r, key,
                  std::string("expected a string or an integer (").append(spec.arg).append(")"));
    out_.push_back(std::move(s));
  }

  const std::string& path_;
  std::vector<Setting> out_;
  std::vector<std::pair<std::pair<std::uint32_t, std::uint32_t>, std::string>> errors_;
  std::unordered_map<const Spec*, toml::source_region> once_;  // where each kOnce flag was given
};

// Applies every setting in order through its Spec::set. Every error is reported, after those
// already in `errors`, together: a file's each with its FILE:LINE:COLUMN and key.
Flags apply_settings(const std::vector<Setting>& settings, std::string errors) {
  Flags f = defaults();
  for (const Setting& s : settings) {
    try {
      s.spec->set(f, s.value);
    } catch (const std::exception& e) {
      errors.append(errors.empty() ? "" : "\n").append(s.where).append(e.what());
    }
  }
  if (!errors.empty()) throw std::invalid_argument(errors);
  return f;
}

}  // namespace

Flags parse_flags(std::span<const std::string> args) {
  std::vector<Setting> given = from_args(args);
  std::vector<Setting> all;
  std::string errors;
  auto named = [&](std::string_view name) {
    auto it = std::find_if(given.rbegin(), given.rend(),
                           [&](const Setting& s) { return name == s.spec->name; });
    return it == given.rend() ? nullptr : &*it;
  };
  const Setting* config = named("--config");
  if (config && !named("--help") && !named("--version")) {
    all = ConfigReader(config->value).read(errors);
    // A flag on the command line replaces every value the file gave it.
    std::erase_if(all, [&](const Setting& s) { return named(s.spec->name) != nullptr; });
  }
  all.insert(all.end(), given.begin(), given.end());
  Flags f = apply_settings(all, std::move(errors));
  if (!f.listen_given && f.server.plain) f.server.listen = {io::parse_address(kPlainListen)};
  if (f.proxy_protocol) f.server.proxy_protocol.assign(f.server.listen.size(), true);
  if (f.help || f.version) return f;
  if (f.server.plain && !f.server.tls.certs.empty())
    throw std::invalid_argument("--plain and --tls-cert exclude each other");
  if (!f.server.plain && f.server.tls.certs.empty())
    throw std::invalid_argument("wss needs --tls-cert FILE --tls-key FILE (or --plain for ws://)");
  for (const auto& ck : f.server.tls.certs) {
    if (ck.cert_file.empty() || ck.key_file.empty())
      throw std::invalid_argument("each --tls-cert needs a matching --tls-key");
  }
  // A default over a shorter --handshake-timeout just leaves the handshake deadline alone
  // (EndpointConfig: the first-byte stage is off then); one given explicitly is a mistake.
  if (f.first_byte_given &&
      f.server.endpoint.first_byte_timeout_ms > f.server.endpoint.handshake_timeout_ms)
    throw std::invalid_argument("--first-byte-timeout must not exceed --handshake-timeout");
  check_bridge(f);
  check_auth(f);
  return f;
}

void check_files(const Flags& f) {
  // The cross checks again: a reload's mix of new and kept values must hold together too.
  check_bridge(f);
  if (!f.server.plain) tls::Context::load(f.server.tls);
  if (f.auth.enabled()) auth::Gate check(f.auth);
}

std::vector<std::string> restart_keys(const Flags& next, const Flags& running) {
  using Same = bool (*)(const Flags&, const Flags&);
  static const std::pair<const char*, Same> fixed[] = {
      {"listen",
       [](const Flags& a, const Flags& b) {
         return std::equal(a.server.listen.begin(), a.server.listen.end(), b.server.listen.begin(),
                           b.server.listen.end(), [](const io::Address& x, const io::Address& y) {
                             return x.to_string() == y.to_string();
                           });
       }},
      {"reuse-port",
       [](const Flags& a, const Flags& b) { return a.server.reuse_port == b.server.reuse_port; }},
      {"plain", [](const Flags& a, const Flags& b) { return a.server.plain == b.server.plain; }},
      {"cores", [](const Flags& a, const Flags& b) { return a.server.cores == b.server.cores; }},
      {"tls-ticket-rotation",
       [](const Flags& a, const Flags& b) {
         return a.server.ticket_rotation_s == b.server.ticket_rotation_s;
       }},
      {"buf-count",
       [](const Flags& a, const Flags& b) {
         return a.server.reactor.buf_count == b.server.reactor.buf_count;
       }},
      {"buf-size",
       [](const Flags& a, const Flags& b) {
         return a.server.reactor.buf_size == b.server.reactor.buf_size;
       }},
      {"buf-incremental",
       [](const Flags& a, const Flags& b) {
         return a.server.reactor.buf_incremental == b.server.reactor.buf_incremental;
       }},
      {"ring-entries",
       [](const Flags& a, const Flags& b) {
         return a.server.reactor.ring_entries == b.server.reactor.ring_entries;
       }},
      {"max-connections",
       [](const Flags& a, const Flags& b) {
         return a.server.reactor.max_connections == b.server.reactor.max_connections;
       }},
      {"backlog",
       [](const Flags& a, const Flags& b) {
         return a.server.reactor.backlog == b.server.reactor.backlog;
       }},
      {"app", [](const Flags& a, const Flags& b) { return a.echo == b.echo; }},
      {"route/backend",
       [](const Flags& a, const Flags& b) { return a.bridge.routes == b.bridge.routes; }},
      {"publish",
       [](const Flags& a, const Flags& b) { return a.bridge.publish == b.bridge.publish; }},
      {"node-name",
       [](const Flags& a, const Flags& b) { return a.bridge.node_name == b.bridge.node_name; }},
      {"forward-header",
       [](const Flags& a, const Flags& b) {
         return a.bridge.forward_headers == b.bridge.forward_headers;
       }},
      {"output-budget",
       [](const Flags& a, const Flags& b) {
         return a.bridge.output_budget == b.bridge.output_budget;
       }},
      {"backend-grace",
       [](const Flags& a, const Flags& b) { return a.bridge.grace_ms == b.bridge.grace_ms; }},
      {"backend-close-spread",
       [](const Flags& a, const Flags& b) {
         return a.bridge.close_spread_ms == b.bridge.close_spread_ms;
       }},
      {"backend-hwm", [](const Flags& a, const Flags& b) { return a.bridge.hwm == b.bridge.hwm; }},
      {"backend-window",
       [](const Flags& a, const Flags& b) {
         return a.bridge.window_events == b.bridge.window_events;
       }},
      {"beat-interval",
       [](const Flags& a, const Flags& b) { return a.bridge.beat_ms == b.bridge.beat_ms; }},
      {"backend-curve-key",
       [](const Flags& a, const Flags& b) {
         return a.bridge.curve.public_key == b.bridge.curve.public_key &&
                a.bridge.curve.secret_key == b.bridge.curve.secret_key;
       }},
      {"backend-curve-server-key",
       [](const Flags& a, const Flags& b) {
         return a.bridge.curve.server_key == b.bridge.curve.server_key;
       }},
      // Each core builds its Gate, or none, at its start: switching auth and the ACL from
      // both off to either on (or back) is a restart; within "on", everything reloads.
      {"auth/acl (on or off)",
       [](const Flags& a, const Flags& b) { return a.auth.enabled() == b.auth.enabled(); }},
      {"drain-timeout",
       [](const Flags& a, const Flags& b) { return a.server.drain_ms == b.server.drain_ms; }},
      {"proxy-protocol",
       [](const Flags& a, const Flags& b) {
         return a.server.proxy_protocol == b.server.proxy_protocol;
       }},
      {"max-message",  // above the start's, with backends (reloadable() says why)
       [](const Flags& a, const Flags& b) {
         return a.echo || a.server.endpoint.max_message <= b.server.endpoint.max_message;
       }},
      {"admin",
       [](const Flags& a, const Flags& b) {
         return a.admin.enabled == b.admin.enabled &&
                a.admin.address.to_string() == b.admin.address.to_string();
       }},
      {"ready-needs-backends",
       [](const Flags& a, const Flags& b) {
         return a.ready_needs_backends == b.ready_needs_backends;
       }},
  };
  std::vector<std::string> changed;
  for (const auto& [key, same] : fixed) {
    if (!same(next, running)) changed.emplace_back(key);
  }
  return changed;
}

Flags reloadable(const Flags& running, const Flags& next) {
  Flags out = running;
  if (!running.server.plain && !next.server.plain) out.server.tls = next.server.tls;
  // The pages are the application's (the embedded chat's), not configuration.
  std::vector<ws::StaticPage> pages = std::move(out.server.endpoint.pages);
  out.server.endpoint = next.server.endpoint;
  out.server.endpoint.pages = std::move(pages);
  // The backend sockets' largest message (ZeroMQ's, which disconnects a backend that sends
  // more) is the start's: a client message above it would come back in an answer or a
  // publication that drops the backend link, again at each resend. Lower is fine.
  if (!running.echo)
    out.server.endpoint.max_message =
        std::min(out.server.endpoint.max_message, running.bridge.max_message);
  if (running.auth.enabled() == next.auth.enabled()) out.auth = next.auth;
  // Applied by main on the main thread when the reload is published.
  out.log_level = next.log_level;
  out.log_format = next.log_format;
  return out;
}

std::string usage() {
  Flags d = defaults();
  std::string out =
      "usage: wsedge --tls-cert FILE --tls-key FILE [flags]\n"
      "       wsedge --plain [flags]\n"
      "A WebSocket edge server on io_uring that bridges clients to backends over ZeroMQ\n"
      "(docs/BRIDGE-PROTOCOL.md); with no --backend it serves an embedded chat.\n"
      "SIGHUP reloads the config file, certificates, auth keys and ACL; SIGTERM drains and "
      "stops.\n\n";
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
