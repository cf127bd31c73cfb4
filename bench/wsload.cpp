// wsload: the WebSocket load generator, on wsedge's own client role and io_uring.
//
//   wsload echo    --connect HOST:PORT [-c N] [-k K] [--size B] [--text] [--duration S]
//   wsload connect --connect HOST:PORT [-c N] [--duration S]
//   wsload idle    --connect HOST:PORT [-c N] [--duration S]
//   wsload fanout  --connect HOST:PORT [-c N] [-k K] [--size B] [--duration S]
//   any mode: --tls for wss://, --resume (connect) to resume the last TLS session,
//             --target PATH: the upgrade's request-target (default "/"; "/?token=..." carries
//             a token in the query),
//             --max-connecting M: at most M handshakes in progress at once (default 256),
//             --threads T --cpu LIST to spread the connections over T reactors, one per CPU
//
// echo: N connections opened first, then K messages in flight on each; every echo is checked
// byte for byte (a wrong byte is an error, not a number). connect: N connect-handshake-close loops.
// idle: N connections held open (pings answered) so the server's memory can be read.
// fanout: N subscribers. Each is ready once the server's first message, the text "ready", has
// come (the backend sends it after subscribing the connection); then the first connection sends
// K text messages ("triggers", seq in the first 8 bytes as hex) that the server publishes to
// all N, and each time a publish has reached all N the next trigger goes: a closed loop at the
// server's fan-out speed. Counted per delivery (latency from its trigger's send); one thread.
// With --prefix TEXT every trigger is TEXT followed by the payload and the deliveries are
// checked against the payload alone: "wsedge:pub bench " makes each trigger a client publish
// the edge checks against its ACL (docs/AUTH.md §6) instead of a message to the backend.
// Prints "measure-start"/"measure-end" at the edges of the measured window, so a driver can
// sample the server at the same moments, and a JSON summary as its last line.
// With threads, each owns its share of the connections (its own ring, nothing shared per
// message); the window opens for all of them together once every connection is open.
#include <sched.h>
#include <sys/resource.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <latch>
#include <memory>
#include <mutex>
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
  std::string path = "/";  // the upgrade's request-target
  std::string prefix;      // fanout: what every trigger starts with, delivered without it
  unsigned connections = 100;
  unsigned inflight = 1;
  std::size_t size = 16;
  bool text = false;
  double duration = 5;
  double warmup = 1;
  std::vector<int> cpus;  // thread i runs on cpus[i % size]; empty: unpinned
  unsigned threads = 1;
  unsigned max_connecting = 256;  // connects in progress at once, so a big N ramps up politely
  bool tls = false;               // wss:// (the server's certificate is not checked: a bench)
  bool resume = false;            // offer the last session: resumed handshakes
  bool fanout() const { return mode == "fanout"; }
};

class LoadApp;

// What the loader threads share. Touched when a phase changes, never per message.
struct Group {
  explicit Group(const Options& o) : opt(o) {}
  const Options& opt;
  std::vector<LoadApp*> apps;              // one per thread, filled before any connection opens
  std::atomic<unsigned> joined{0};         // connections opened for the first time, all threads
  std::atomic<std::uint64_t> ready_ns{0};  // when the last of them opened
  std::uint64_t measure_start = 0, measure_end = 0;  // written before the start is posted
  std::atomic<bool> started{false}, ended{false};
  double cpu_start = 0, cpu_end = 0;

  // What the threads measured, summed as each finishes.
  std::mutex mu;
  Histogram hist;
  std::uint64_t bytes = 0, errors = 0, resumed = 0;
  unsigned opened = 0;

  void mark_start() {
    if (started.exchange(true)) return;
    cpu_start = cpu_seconds();
    std::puts("measure-start");
    std::fflush(stdout);
  }
  void mark_end() {
    if (!started.load() || ended.exchange(true)) return;
    cpu_end = cpu_seconds();
    std::puts("measure-end");
    std::fflush(stdout);
  }
};

class LoadApp {
 public:
  LoadApp(const Options& o, Group& g, unsigned connections)
      : opt_(o), group_(g), connections_(connections) {
    pattern_.resize(o.size);
    for (std::size_t i = 0; i < o.size; ++i)
      pattern_[i] = static_cast<std::byte>(o.text ? 'a' + i % 26 : (i * 131 + 7) & 0xFF);
    // A trigger is the prefix then the payload; the payload part is what must be delivered.
    const auto* prefix = reinterpret_cast<const std::byte*>(o.prefix.data());
    send_buf_.assign(prefix, prefix + o.prefix.size());
    send_buf_.insert(send_buf_.end(), pattern_.begin(), pattern_.end());
  }

  void attach(ws::Endpoint<LoadApp>* ep, io::Reactor* r) {
    ep_ = ep;
    reactor_ = r;
  }

  void start() {
    conns_.resize(connections_);
    // One flat ring of send times, `inflight` per connection, so a message touches one line.
    sent_at_.resize(std::size_t{connections_} * opt_.inflight);
    for (std::size_t i = 0; i < conns_.size(); ++i)
      conns_[i].sent_at = &sent_at_[i * opt_.inflight];
    start_task_.app = this;
    start_task_.run = [](io::PostTask* t, io::Reactor&) {
      static_cast<StartTask*>(t)->app->begin_phases();
    };
    open_more();
  }

  // Which of conns_ a connection is.
  struct ConnState {
    unsigned index = 0;
  };

  // --- application callbacks ---
  void on_open(ws::Connection c) {
    --connecting_;
    ++opened_;
    Conn& s = conns_[ep_->state(c)->index];
    s.conn = c;
    s.open = true;
    std::uint64_t t = reactor_->now_ns();
    if (opt_.mode == "connect") {
      record_if_measuring(t, t - s.connect_started, 0);
      c.close(1000);
    }
    if (opened_ == connections_ && !joined_ && !opt_.fanout()) join();
    open_more();
  }

  void on_message(ws::Connection c, Opcode op, std::span<std::byte> p) {
    Conn& s = conns_[ep_->state(c)->index];
    std::uint64_t t = reactor_->now_ns();
    if (opt_.fanout()) return on_delivery(s, op, p, t);
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
    Conn& s = conns_[ep_->state(c)->index];
    if (!s.open) {
      --connecting_;
      ++errors_;
      if (errors_ <= 5)
        std::fprintf(stderr, "wsload: connection failed: %.*s\n", static_cast<int>(reason.size()),
                     reason.data());
    } else if (code != 1000 && code != 1001 && code != 1005) {  // 1001: the end of an idle run
      ++errors_;
      if (errors_ <= 5)
        // The local endpoint's protocol_errors say which side refused a frame: ours counts
        // when our reader failed on the server's bytes; unchanged, the server refused ours.
        std::fprintf(stderr, "wsload: closed with %u %.*s (wsload's reader failures: %llu)\n", code,
                     static_cast<int>(reason.size()), reason.data(),
                     static_cast<unsigned long long>(ep_->counters().protocol_errors.get()));
    }
    s.open = false;
    ++closed_;
    if (opt_.mode == "connect" && !finished(reactor_->now_ns())) {
      connect_slot(ep_->state(c)->index);
      return;
    }
    if (closed_ >= connections_ && (opt_.mode != "connect" || finished(reactor_->now_ns()))) done();
  }

  void on_drain(ws::Connection) {}

  // Adds what this thread measured to the group's totals.
  void collect() const {
    std::lock_guard<std::mutex> lock(group_.mu);
    group_.hist.merge(hist_);
    group_.bytes += bytes_;
    group_.errors += errors_;
    group_.opened += opened_;
    group_.resumed += ep_->counters().tls_resumed;
  }

  io::Reactor& reactor() { return *reactor_; }

 private:
  struct Conn {
    ws::Connection conn;
    std::uint64_t* sent_at = nullptr;  // ring of send times, one per message in flight
    unsigned send_slot = 0, recv_slot = 0;
    std::uint64_t sent = 0, received = 0, connect_started = 0;
    unsigned outstanding = 0;
    bool open = false;
    bool ready = false;  // fanout: the server's "ready" has come
  };

  // --- fanout ---
  static constexpr unsigned kRing = 256;  // publishes in flight at most

  void on_delivery(Conn& s, Opcode op, std::span<std::byte> p, std::uint64_t t) {
    if (!s.ready) {
      std::string_view text(reinterpret_cast<const char*>(p.data()), p.size());
      if (op != Opcode::kText || text != "ready") {
        ++errors_;
        return;
      }
      s.ready = true;
      if (++ready_ == connections_ && !joined_) join();
      return;
    }
    std::uint64_t seq = 0;
    bool ok = op == Opcode::kText && p.size() == pattern_.size() && p.size() >= 8;
    for (std::size_t i = 0; ok && i < 8; ++i) {
      auto ch = static_cast<char>(p[i]);
      if (ch >= '0' && ch <= '9')
        seq = seq << 4 | static_cast<unsigned>(ch - '0');
      else if (ch >= 'a' && ch <= 'f')
        seq = seq << 4 | static_cast<unsigned>(ch - 'a' + 10);
      else
        ok = false;
    }
    ok = ok && seq < pub_sent_ && seq >= pub_done_ &&
         std::memcmp(p.data() + 8, pattern_.data() + 8, p.size() - 8) == 0;
    if (!ok) {
      ++errors_;
      return;
    }
    unsigned slot = static_cast<unsigned>(seq % kRing);
    record_if_measuring(t, t - pub_at_[slot], p.size());
    if (++pub_count_[slot] < connections_) return;
    // Publishes complete in order (every connection gets them in order), so the oldest is this.
    pub_count_[slot] = 0;
    ++pub_done_;
    if (t < measure_end_ || measure_end_ == 0) {
      publish_next(t);
    } else if (pub_done_ == pub_sent_) {
      for (Conn& c : conns_)
        if (c.open) c.conn.close(1000);
    }
  }

  void publish_next(std::uint64_t t) {
    std::uint64_t seq = pub_sent_++;
    static constexpr char kHex[] = "0123456789abcdef";
    std::byte* payload = send_buf_.data() + opt_.prefix.size();
    for (std::size_t i = 0; i < 8; ++i)
      payload[i] = static_cast<std::byte>(kHex[(seq >> (4 * (7 - i))) & 15]);
    pub_at_[seq % kRing] = t;
    conns_[0].conn.send(Opcode::kText, send_buf_);
  }

  struct StartTask : io::PostTask {
    LoadApp* app = nullptr;
  };

  void open_more() {
    unsigned most = std::max(1u, opt_.max_connecting / opt_.threads);
    while (next_to_open_ < connections_ && connecting_ < most) connect_slot(next_to_open_++);
  }

  // This thread's connections are all open; the thread that completes the group opens the
  // window for every thread at once.
  void join() {
    joined_ = true;
    unsigned total = group_.joined.fetch_add(connections_) + connections_;
    if (total < opt_.connections) return;
    std::uint64_t t = reactor_->now_ns();
    group_.measure_start = t + static_cast<std::uint64_t>(opt_.warmup * 1e9);
    group_.measure_end = group_.measure_start + static_cast<std::uint64_t>(opt_.duration * 1e9);
    group_.ready_ns.store(t);
    if (opt_.mode == "idle") {
      std::printf("idle: %u open\n", opt_.connections);
      std::fflush(stdout);
    }
    for (LoadApp* a : group_.apps) {
      if (a == this)
        begin_phases();
      else
        reactor_->post(*a->reactor_, &a->start_task_);
    }
  }

  void connect_slot(unsigned i) {
    ++connecting_;
    Conn& s = conns_[i];
    s.connect_started = reactor_->now_ns();
    s.open = false;
    ws::Connection c = ep_->connect(opt_.target, opt_.host, opt_.path);
    ep_->state(c)->index = i;
  }

  void begin_phases() {
    measure_start_ = group_.measure_start;
    measure_end_ = group_.measure_end;
    std::uint64_t t = reactor_->now_ns();
    // Echo load starts only once every connection is open, so the ramp-up never competes
    // with the load for the server's core.
    if (opt_.mode == "echo") {
      for (Conn& s : conns_) {
        for (unsigned i = 0; i < opt_.inflight; ++i) send_next(s, t);
      }
    }
    if (opt_.fanout()) {
      // Every subscriber has had its "ready", but a proxy may still be passing the last
      // subscriptions to its publisher; 200 ms later (inside the warm-up) the triggers start.
      reactor_->schedule(
          200,
          [](void* ctx, io::Reactor& r) {
            auto* self = static_cast<LoadApp*>(ctx);
            for (unsigned i = 0; i < self->opt_.inflight; ++i) self->publish_next(r.now_ns());
          },
          this);
    }
  }

  bool finished(std::uint64_t t) const { return measure_end_ != 0 && t >= measure_end_; }

  void record_if_measuring(std::uint64_t t, std::uint64_t latency, std::size_t bytes) {
    if (measure_start_ == 0 || t < measure_start_) return;
    if (t >= measure_end_) {
      if (!past_end_) {  // once per thread: the shared flags are not for every late echo
        past_end_ = true;
        group_.mark_end();
      }
      return;
    }
    if (!measuring_) {
      measuring_ = true;
      group_.mark_start();
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

  void done() { reactor_->exit_when_idle(); }

  const Options& opt_;
  Group& group_;
  const unsigned connections_;  // this thread's share
  StartTask start_task_;
  ws::Endpoint<LoadApp>* ep_ = nullptr;
  io::Reactor* reactor_ = nullptr;
  std::vector<std::byte> pattern_, send_buf_;
  std::vector<Conn> conns_;
  std::vector<std::uint64_t> sent_at_;
  Histogram hist_;
  std::uint64_t bytes_ = 0, errors_ = 0;
  std::uint64_t measure_start_ = 0, measure_end_ = 0;  // the group's window, once it opened
  unsigned next_to_open_ = 0, connecting_ = 0, opened_ = 0, closed_ = 0, ready_ = 0;
  std::uint64_t pub_sent_ = 0, pub_done_ = 0;  // fanout: triggers sent, publishes complete
  std::array<std::uint64_t, kRing> pub_at_{};
  std::array<unsigned, kRing> pub_count_{};
  bool joined_ = false, measuring_ = false, past_end_ = false;
};

void print_summary(const Group& g) {
  const Options& opt = g.opt;
  double secs = g.started ? static_cast<double>(g.measure_end - g.measure_start) / 1e9 : 0;
  double rate = secs > 0 ? static_cast<double>(g.hist.count()) / secs : 0;
  double mbps = secs > 0 ? static_cast<double>(g.bytes) / secs / 1e6 : 0;
  // Of one CPU: with threads it can pass 100.
  double cpu = secs > 0 && g.ended ? (g.cpu_end - g.cpu_start) / secs * 100 : 0;
  auto us = [](std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
  const Histogram& h = g.hist;
  const char* unit = opt.mode == "connect" ? "connects" : "messages";
  std::printf(
      "%s: %.0f %s/s, %.1f MB/s, p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us, errors "
      "%llu, loader cpu %.0f%% (%u threads)\n",
      opt.mode.c_str(), rate, unit, mbps, us(h.percentile(50)), us(h.percentile(99)),
      us(h.percentile(99.9)), us(h.max()), static_cast<unsigned long long>(g.errors), cpu,
      opt.threads);
  std::printf(
      "{\"mode\":\"%s\",\"connections\":%u,\"inflight\":%u,\"size\":%zu,\"text\":%s,"
      "\"threads\":%u,\"seconds\":%.3f,\"count\":%llu,\"rate\":%.1f,\"mb_per_s\":%.2f,"
      "\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f,\"errors\":%llu,"
      "\"opened\":%u,\"loader_cpu_pct\":%.1f,\"tls\":%s,\"resumed\":%llu}\n",
      opt.mode.c_str(), opt.connections, opt.inflight, opt.size, opt.text ? "true" : "false",
      opt.threads, secs, static_cast<unsigned long long>(h.count()), rate, mbps,
      us(h.percentile(50)), us(h.percentile(99)), us(h.percentile(99.9)), us(h.max()),
      static_cast<unsigned long long>(g.errors), g.opened, cpu, opt.tls ? "true" : "false",
      static_cast<unsigned long long>(g.resumed));
  std::fflush(stdout);
}

// "3", "1-7" or "1,3,5-6".
std::vector<int> parse_cpus(const std::string& list) {
  std::vector<int> cpus;
  std::size_t pos = 0;
  while (pos < list.size()) {
    std::size_t comma = list.find(',', pos);
    std::string item = list.substr(pos, comma == std::string::npos ? comma : comma - pos);
    std::size_t dash = item.find('-');
    int lo = std::stoi(item.substr(0, dash));
    int hi = dash == std::string::npos ? lo : std::stoi(item.substr(dash + 1));
    for (int c = lo; c <= hi; ++c) cpus.push_back(c);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return cpus;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(
      stderr,
      "wsload: %s\nusage: wsload echo|connect|idle|fanout --connect HOST:PORT [-c CONNECTIONS] "
      "[-k INFLIGHT]\n"
      "              [--size BYTES] [--text] [--duration S] [--warmup S] [--threads T]\n"
      "              [--cpu LIST] [--tls] [--resume] [--max-connecting M] [--target PATH]\n"
      "              [--prefix TEXT (fanout)]\n",
      why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  if (argc < 2) usage("missing mode");
  Options o;
  o.mode = argv[1];
  if (o.mode != "echo" && o.mode != "connect" && o.mode != "idle" && o.mode != "fanout")
    usage("mode must be echo, connect, idle or fanout");
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
      o.cpus = parse_cpus(value());
    else if (a == "--threads")
      o.threads = static_cast<unsigned>(std::stoul(value()));
    else if (a == "--max-connecting")
      o.max_connecting = static_cast<unsigned>(std::max(1ul, std::stoul(value())));
    else if (a == "--tls")
      o.tls = true;
    else if (a == "--target")
      o.path = value();
    else if (a == "--prefix")
      o.prefix = value();
    else if (a == "--resume")
      o.resume = o.tls = true;
    else
      usage(("unknown flag " + a).c_str());
  }
  if (!have_target) usage("--connect HOST:PORT is required");
  // An echo carries the prefix back, and its check stamps the first bytes: only fanout strips it.
  if (!o.prefix.empty() && o.mode != "fanout") usage("--prefix applies to fanout only");
  if (o.path.empty() || o.path[0] != '/') usage("--target must start with '/'");
  if (o.connections == 0 || o.inflight == 0) usage("connections and inflight must be at least 1");
  if (o.threads == 0 || o.threads > o.connections)
    usage("threads must be at least 1 and at most the connections");
  if (o.mode == "fanout") {
    // One thread counts every delivery: the completion of a publish is not shared across threads.
    o.threads = 1;
    o.text = true;
    o.size = std::max<std::size_t>(o.size, 8);
    if (o.inflight > 256) usage("fanout: at most 256 publishes in flight");
  }
  return o;
}

}  // namespace
}  // namespace wsedge::bench

namespace wsedge::bench {
namespace {

void pin(const Options& opt, unsigned index) {
  if (opt.cpus.empty()) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(opt.cpus[index % opt.cpus.size()], &set);
  sched_setaffinity(0, sizeof set, &set);
}

// One loader thread: its reactor, endpoint and share of the connections, all its own.
void run_thread(const Options& opt, Group& g, unsigned index, std::latch& registered,
                std::latch& finished, std::latch& release, std::atomic<bool>& failed) {
  pin(opt, index);
  unsigned share = opt.connections / opt.threads + (index < opt.connections % opt.threads);
  std::unique_ptr<io::Reactor> reactor;
  std::unique_ptr<ws::Endpoint<LoadApp>> ep;
  std::unique_ptr<LoadApp> app;
  tls::CtxPtr tls_ctx(nullptr, SSL_CTX_free);
  try {
    io::ReactorConfig rc;
    // Connect churn keeps closing sockets in their slots while they linger; a load generator
    // waits only briefly for a server's FIN.
    rc.max_connections = opt.mode == "connect" ? share * 8 + 1024 : share + 64;
    rc.linger_ms = 200;
    rc.buf_count = 4096;
    reactor = std::make_unique<io::Reactor>(rc, index);
    ws::EndpointConfig ec;
    ec.ping_interval_ms = 0;  // the server pings; the loader only answers
    ec.max_message = std::max<std::uint64_t>(opt.size, 1024);
    app = std::make_unique<LoadApp>(opt, g, share);
    ep = std::make_unique<ws::Endpoint<LoadApp>>(*reactor, ec, *app);
    app->attach(ep.get(), reactor.get());
    if (opt.tls) {
      tls_ctx.reset(SSL_CTX_new(TLS_client_method()));
      SSL_CTX_set_min_proto_version(tls_ctx.get(), TLS1_2_VERSION);
      SSL_CTX_set_session_cache_mode(tls_ctx.get(), SSL_SESS_CACHE_CLIENT);
      ep->set_client_tls(tls_ctx.get(), opt.resume);
    }
    g.apps[index] = app.get();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wsload: thread %u: %s\n", index, e.what());
    failed = true;
  }
  registered.arrive_and_wait();
  if (!failed) {
    app->start();
    try {
      reactor->run(*ep);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "wsload: %s\n", e.what());
    }
    app->collect();
  }
  finished.count_down();
  release.wait();  // the watchdog may still reach this reactor until every thread is done
}

}  // namespace
}  // namespace wsedge::bench

int main(int argc, char** argv) {
  using namespace wsedge;
  bench::Options opt = bench::parse(argc, argv);
  rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  signal(SIGPIPE, SIG_IGN);

  bench::Group group(opt);
  group.apps.assign(opt.threads, nullptr);
  std::latch registered(opt.threads), finished(opt.threads), release(1);
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < opt.threads; ++i)
    threads.emplace_back(bench::run_thread, std::cref(opt), std::ref(group), i,
                         std::ref(registered), std::ref(finished), std::ref(release),
                         std::ref(failed));

  // Opening gets a minute; then the run gets its time (idle: exactly its time, to hold the
  // connections; otherwise plus a grace period). A run that cannot finish is ended here.
  std::atomic<bool> over{false};
  std::thread watchdog([&] {
    registered.wait();
    const std::uint64_t started = io::Reactor::monotonic_ns();
    const double run_s = opt.warmup + opt.duration + (opt.mode == "idle" ? 0 : 30);
    while (!over) {
      std::uint64_t ready = group.ready_ns.load();
      std::uint64_t now = io::Reactor::monotonic_ns();
      if (ready ? now >= ready + static_cast<std::uint64_t>(run_s * 1e9)
                : now >= started + 60000000000ull)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (over) return;
    for (bench::LoadApp* a : group.apps) {
      if (a) a->reactor().request_stop();
    }
  });
  finished.wait();
  over = true;
  watchdog.join();
  release.count_down();
  for (std::thread& t : threads) t.join();
  group.mark_end();
  bench::print_summary(group);
  return group.errors || failed ? 1 : 0;
}
