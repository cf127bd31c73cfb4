// wsload: the WebSocket load generator, on wsedge's own client role and io_uring.
//
//   wsload echo    --connect HOST:PORT [-c N] [-k K] [--size B] [--text] [--duration S]
//   wsload connect --connect HOST:PORT [-c N] [--duration S]
//   wsload idle    --connect HOST:PORT [-c N] [--duration S]
//   any mode: --tls for wss://, --resume (connect) to resume the last TLS session
//
// echo: N connections opened first, then K messages in flight on each; every echo is checked
// byte for byte (a wrong byte is an error, not a number). connect: N connect-handshake-close loops.
// idle: N connections held open (pings answered) so the server's memory can be read.
// Prints "measure-start"/"measure-end" at the edges of the measured window, so a driver can
// sample the server at the same moments, and a JSON summary as its last line.
#include <sched.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/io/reactor.hpp"
#include "engine/ws/endpoint.hpp"
#include "histogram.hpp"
#include "tls/context.hpp"

namespace wsedge::bench {
namespace {

using protocol::Opcode;

std::uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

double cpu_seconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct Options {
  std::string mode;
  io::Address target;
  std::string host = "localhost";
  unsigned connections = 100;
  unsigned inflight = 1;
  std::size_t size = 16;
  bool text = false;
  double duration = 5;
  double warmup = 1;
  int cpu = -1;
  unsigned max_connecting = 256;  // connects in progress at once, so a big N ramps up politely
  bool tls = false;               // wss:// (the server's certificate is not checked: a bench)
  bool resume = false;            // offer the last session: resumed handshakes
};

class LoadApp {
 public:
  explicit LoadApp(const Options& o) : opt_(o) {
    pattern_.resize(o.size);
    for (std::size_t i = 0; i < o.size; ++i)
      pattern_[i] = static_cast<std::byte>(o.text ? 'a' + i % 26 : (i * 131 + 7) & 0xFF);
    send_buf_ = pattern_;
  }

  void attach(ws::Endpoint<LoadApp>* ep, io::Reactor* r) {
    ep_ = ep;
    reactor_ = r;
  }

  void start() {
    conns_.resize(opt_.connections);
    // One flat ring of send times, `inflight` per connection, so a message touches one line.
    sent_at_.resize(std::size_t{opt_.connections} * opt_.inflight);
    for (std::size_t i = 0; i < conns_.size(); ++i)
      conns_[i].sent_at = &sent_at_[i * opt_.inflight];
    while (next_to_open_ < opt_.connections && connecting_ < opt_.max_connecting) open_next();
  }

  // --- application callbacks ---
  void on_open(ws::Connection c) {
    --connecting_;
    ++opened_;
    Conn& s = conns_[c.user_data()];
    s.conn = c;
    s.open = true;
    std::uint64_t t = reactor_->now_ns();
    if (opt_.mode == "connect") {
      record_if_measuring(t, t - s.connect_started, 0);
      c.close(1000);
    }
    if (opened_ == opt_.connections && phase_start_ == 0) begin_phases(t);
    while (next_to_open_ < opt_.connections && connecting_ < opt_.max_connecting) open_next();
  }

  void on_message(ws::Connection c, Opcode op, std::span<std::byte> p) {
    Conn& s = conns_[c.user_data()];
    std::uint64_t t = reactor_->now_ns();
    if (!verify(s, op, p)) ++errors_;
    std::uint64_t latency = t - s.sent_at[next_slot(s.recv_slot)];
    ++s.received;
    --s.outstanding;
    record_if_measuring(t, latency, p.size());
    if (t < measure_end_ || measure_end_ == 0)
      send_next(s, t);
    else if (s.outstanding == 0)
      c.close(1000);
  }

  void on_close(ws::Connection c, std::uint16_t code, std::string_view reason) {
    Conn& s = conns_[c.user_data()];
    if (!s.open) {
      --connecting_;
      ++errors_;
      if (errors_ <= 5)
        std::fprintf(stderr, "wsload: connection failed: %.*s\n", static_cast<int>(reason.size()),
                     reason.data());
    } else if (code != 1000 && code != 1001 && code != 1005) {  // 1001: the end of an idle run
      ++errors_;
      if (errors_ <= 5)
        std::fprintf(stderr, "wsload: closed with %u %.*s\n", code, static_cast<int>(reason.size()),
                     reason.data());
    }
    s.open = false;
    ++closed_;
    if (opt_.mode == "connect" && !finished(reactor_->now_ns())) {
      connect_slot(static_cast<unsigned>(c.user_data()));
      return;
    }
    if (closed_ >= opt_.connections && (opt_.mode != "connect" || finished(reactor_->now_ns())))
      done();
  }

  void on_drain(ws::Connection) {}

  void print_summary() const {
    double secs = static_cast<double>(measure_end_ - measure_start_) / 1e9;
    if (measure_end_ == 0 || measure_start_ == 0) secs = 0;
    double rate = secs > 0 ? static_cast<double>(hist_.count()) / secs : 0;
    double mbps = secs > 0 ? static_cast<double>(bytes_) / secs / 1e6 : 0;
    double cpu = secs > 0 ? (cpu_end_ - cpu_start_) / secs * 100 : 0;
    const char* unit = opt_.mode == "connect" ? "connects" : "messages";
    std::printf(
        "%s: %.0f %s/s, %.1f MB/s, p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us, errors "
        "%llu, loader cpu %.0f%%\n",
        opt_.mode.c_str(), rate, unit, mbps, us(hist_.percentile(50)), us(hist_.percentile(99)),
        us(hist_.percentile(99.9)), us(hist_.max()), static_cast<unsigned long long>(errors_), cpu);
    std::printf(
        "{\"mode\":\"%s\",\"connections\":%u,\"inflight\":%u,\"size\":%zu,\"text\":%s,\"seconds\":%"
        ".3f,"
        "\"count\":%llu,\"rate\":%.1f,\"mb_per_s\":%.2f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_"
        "us\":%.2f,"
        "\"max_us\":%.2f,\"errors\":%llu,\"opened\":%u,\"loader_cpu_pct\":%.1f,\"tls\":%s,"
        "\"resumed\":%llu}\n",
        opt_.mode.c_str(), opt_.connections, opt_.inflight, opt_.size, opt_.text ? "true" : "false",
        secs, static_cast<unsigned long long>(hist_.count()), rate, mbps, us(hist_.percentile(50)),
        us(hist_.percentile(99)), us(hist_.percentile(99.9)), us(hist_.max()),
        static_cast<unsigned long long>(errors_), opened_, cpu, opt_.tls ? "true" : "false",
        static_cast<unsigned long long>(ep_->counters().tls_resumed));
    std::fflush(stdout);
  }

  std::uint64_t errors() const { return errors_; }
  // When every connection was open (0 until then): the watchdog's clock starts there.
  std::uint64_t ready_ns() const { return ready_ns_.load(); }

 private:
  struct Conn {
    ws::Connection conn;
    std::uint64_t* sent_at = nullptr;  // ring of send times, one per message in flight
    unsigned send_slot = 0, recv_slot = 0;
    std::uint64_t sent = 0, received = 0, connect_started = 0;
    unsigned outstanding = 0;
    bool open = false;
  };

  static double us(std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

  void open_next() { connect_slot(next_to_open_++); }

  void connect_slot(unsigned i) {
    ++connecting_;
    Conn& s = conns_[i];
    s.connect_started = reactor_->now_ns();
    s.open = false;
    ws::Connection c = ep_->connect(opt_.target, opt_.host, "/");
    c.user_data() = i;
  }

  void begin_phases(std::uint64_t t) {
    phase_start_ = t;
    ready_ns_.store(t);
    measure_start_ = t + static_cast<std::uint64_t>(opt_.warmup * 1e9);
    measure_end_ = measure_start_ + static_cast<std::uint64_t>(opt_.duration * 1e9);
    if (opt_.mode == "idle") {
      std::printf("idle: %u open\n", opened_);
      std::fflush(stdout);
    }
    // Echo load starts only once every connection is open, so the ramp-up never competes
    // with the load for the server's core.
    if (opt_.mode == "echo") {
      for (Conn& s : conns_) {
        for (unsigned i = 0; i < opt_.inflight; ++i) send_next(s, t);
      }
    }
  }

  bool finished(std::uint64_t t) const { return measure_end_ != 0 && t >= measure_end_; }

  void record_if_measuring(std::uint64_t t, std::uint64_t latency, std::size_t bytes) {
    if (measure_start_ == 0 || t < measure_start_) return;
    if (!measuring_ && t < measure_end_) {
      measuring_ = true;
      measure_start_ = t;
      cpu_start_ = cpu_seconds();
      std::puts("measure-start");
      std::fflush(stdout);
    }
    if (t >= measure_end_) {
      if (measuring_) {
        measuring_ = false;
        measure_end_ = t;
        cpu_end_ = cpu_seconds();
        std::puts("measure-end");
        std::fflush(stdout);
      }
      return;
    }
    hist_.record(latency);
    bytes_ += bytes;
  }

  // The first 8 payload bytes carry the message's sequence number; the rest is the pattern.
  void stamp(std::uint64_t seq) {
    std::size_t n = std::min<std::size_t>(8, send_buf_.size());
    for (std::size_t i = 0; i < n; ++i) {
      auto nibble = static_cast<std::uint8_t>((seq >> (8 * i)) & 0xFF);
      send_buf_[i] = static_cast<std::byte>(opt_.text ? 'a' + (nibble & 15) : nibble);
    }
  }

  // Echoes come back in order, so sends and receipts walk the same ring (no division per message).
  unsigned next_slot(unsigned& slot) const {
    unsigned cur = slot;
    slot = cur + 1 == opt_.inflight ? 0 : cur + 1;
    return cur;
  }

  void send_next(Conn& s, std::uint64_t t) {
    stamp(s.sent);
    s.sent_at[next_slot(s.send_slot)] = t;
    ++s.sent;
    ++s.outstanding;
    s.conn.send(opt_.text ? Opcode::kText : Opcode::kBinary, send_buf_);
  }

  bool verify(const Conn& s, Opcode op, std::span<const std::byte> p) {
    if (op != (opt_.text ? Opcode::kText : Opcode::kBinary) || p.size() != pattern_.size())
      return false;
    stamp(s.received);
    std::size_t n = std::min<std::size_t>(8, p.size());
    return std::memcmp(p.data(), send_buf_.data(), n) == 0 &&
           std::memcmp(p.data() + n, pattern_.data() + n, p.size() - n) == 0;
  }

  void done() {
    if (measuring_) {
      measuring_ = false;
      cpu_end_ = cpu_seconds();
      measure_end_ = now_ns();
      std::puts("measure-end");
    }
    reactor_->exit_when_idle();
  }

  const Options& opt_;
  ws::Endpoint<LoadApp>* ep_ = nullptr;
  io::Reactor* reactor_ = nullptr;
  std::vector<std::byte> pattern_, send_buf_;
  std::vector<Conn> conns_;
  std::vector<std::uint64_t> sent_at_;
  Histogram hist_;
  std::uint64_t bytes_ = 0, errors_ = 0;
  std::uint64_t phase_start_ = 0, measure_start_ = 0, measure_end_ = 0;
  double cpu_start_ = 0, cpu_end_ = 0;
  unsigned next_to_open_ = 0, connecting_ = 0, opened_ = 0, closed_ = 0;
  bool measuring_ = false;
  std::atomic<std::uint64_t> ready_ns_{0};
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "wsload: %s\nusage: wsload echo|connect|idle --connect HOST:PORT [-c CONNECTIONS] "
               "[-k INFLIGHT]\n"
               "              [--size BYTES] [--text] [--duration S] [--warmup S] [--cpu N] "
               "[--tls] [--resume]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  if (argc < 2) usage("missing mode");
  Options o;
  o.mode = argv[1];
  if (o.mode != "echo" && o.mode != "connect" && o.mode != "idle")
    usage("mode must be echo, connect or idle");
  bool have_target = false;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--connect") {
      o.target = io::parse_address(value());
      have_target = true;
    } else if (a == "-c" || a == "--connections")
      o.connections = static_cast<unsigned>(std::stoul(value()));
    else if (a == "-k" || a == "--inflight")
      o.inflight = static_cast<unsigned>(std::stoul(value()));
    else if (a == "--size")
      o.size = std::stoul(value());
    else if (a == "--text")
      o.text = true;
    else if (a == "--duration")
      o.duration = std::stod(value());
    else if (a == "--warmup")
      o.warmup = std::stod(value());
    else if (a == "--cpu")
      o.cpu = std::stoi(value());
    else if (a == "--tls")
      o.tls = true;
    else if (a == "--resume")
      o.resume = o.tls = true;
    else
      usage(("unknown flag " + a).c_str());
  }
  if (!have_target) usage("--connect HOST:PORT is required");
  if (o.connections == 0 || o.inflight == 0) usage("connections and inflight must be at least 1");
  return o;
}

}  // namespace
}  // namespace wsedge::bench

int main(int argc, char** argv) {
  using namespace wsedge;
  bench::Options opt = bench::parse(argc, argv);
  if (opt.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(opt.cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
  }
  rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  signal(SIGPIPE, SIG_IGN);

  io::ReactorConfig rc;
  // Connect churn keeps closing sockets in their slots while they linger; a load generator
  // waits only briefly for a server's FIN.
  rc.max_connections = opt.mode == "connect" ? opt.connections * 8 + 1024 : opt.connections + 64;
  rc.linger_ms = 200;
  rc.buf_count = 4096;
  io::Reactor reactor(rc, 0);
  ws::EndpointConfig ec;
  ec.ping_interval_ms = 0;  // the server pings; the loader only answers
  ec.max_message = std::max<std::uint64_t>(opt.size, 1024);
  bench::LoadApp app(opt);
  ws::Endpoint<bench::LoadApp> ep(reactor, ec, app);
  app.attach(&ep, &reactor);
  tls::CtxPtr tls_ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (opt.tls) {
    SSL_CTX_set_min_proto_version(tls_ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(tls_ctx.get(), SSL_SESS_CACHE_CLIENT);
    ep.set_client_tls(tls_ctx.get(), opt.resume);
  }

  // Opening gets a minute; then the run gets its time (idle: exactly its time, to hold the
  // connections; otherwise plus a grace period). A run that cannot finish is ended here.
  std::atomic<bool> over{false};
  std::thread watchdog([&] {
    const std::uint64_t started = bench::now_ns();
    const double run_s = opt.warmup + opt.duration + (opt.mode == "idle" ? 0 : 30);
    while (!over) {
      std::uint64_t ready = app.ready_ns();
      std::uint64_t now = bench::now_ns();
      if (ready ? now >= ready + static_cast<std::uint64_t>(run_s * 1e9)
                : now >= started + 60000000000ull)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!over) reactor.request_stop();
  });
  app.start();
  try {
    reactor.run(ep);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wsload: %s\n", e.what());
  }
  over = true;
  watchdog.join();
  app.print_summary();
  return app.errors() ? 1 : 0;
}
