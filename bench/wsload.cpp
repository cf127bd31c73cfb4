// wsload: the WebSocket load generator, on wsedge's own client role and io_uring.
//
//   wsload echo    --connect HOST:PORT [-c N] [-k K] [--size B] [--text] [--duration S]
//   wsload connect --connect HOST:PORT [-c N] [--duration S]
//   wsload idle    --connect HOST:PORT [-c N] [--duration S]
//   wsload fanout  --connect HOST:PORT [-c N] [-k K] [--size B] [--duration S]
//   any mode: --tls for wss://, --resume (connect) to resume the last TLS session,
//             --deflate to offer permessage-deflate without context takeover (docs/DEFLATE.md
//             §6); a connection whose server declines it is an error, and so is a --json run
//             whose received wire bytes are not below its payload bytes,
//             --json (echo, fanout): the payload is JSON-like text (ids, names, timestamps,
//             nested arrays, numbers) that compresses as API traffic does,
//             --target PATH: the upgrade's request-target (default "/"; "/?token=..." carries
//             a token in the query),
//             --max-connecting M: at most M handshakes in progress at once (default 256),
//             --rate R (connect): R connects a second over all threads, started at each 10 ms
//             tick, at most N in progress (an open loop, so arms are compared at one load;
//             without it, a new connect as each closes),
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
// sample the server at the same moments, and a JSON summary as its last line. The summary has
// the window's payload bytes and wire bytes (what the sockets carried: frame headers, masks,
// compressed payloads) each way, so a compression ratio is measured here, alike for every
// server: payload_received / wire_received is the server's.
// With threads, each owns its share of the connections (its own ring, nothing shared per
// message); the window opens for all of them together once every connection is open.
#include <sched.h>
#include <sys/resource.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
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

// --json: the sequence field is the 8 characters after {"seq":" (kJsonHead).
constexpr std::string_view kJsonHead = "{\"seq\":\"00000000\",\"items\":[", kJsonTail = "]}";
constexpr std::size_t kJsonSeqAt = 8;

// JSON-like text of exactly `size` bytes (at least kJsonHead and kJsonTail), shaped like API
// traffic, so it compresses as that does: a list of records with ids, names, e-mail addresses,
// ISO timestamps, flags, numbers, tags and nested objects and arrays, whose values vary (a
// fixed LCG: the same text every run, for every server), then a note of words that fills the
// size exactly. Filling with spaces instead would compress far better than traffic does.
std::string json_payload(std::size_t size) {
  static constexpr const char* kWords[] = {
      "alpha",  "bravo", "charlie", "delta", "echo",  "foxtrot", "golf",   "hotel", "india",
      "juliet", "kilo",  "lima",    "mike",  "oscar", "papa",    "quebec", "romeo", "sierra"};
  std::uint32_t x = 20261130;
  auto next = [&x](std::uint32_t below) {
    x = x * 1103515245u + 12345u;
    return (x >> 8) % below;
  };
  std::string out(kJsonHead);
  char rec[512];
  for (unsigned id = 0;; ++id) {
    unsigned user = next(10000);
    int n = std::snprintf(
        rec, sizeof rec,
        "%s{\"id\":%u,\"name\":\"user-%04u\",\"email\":\"user-%04u@example.com\","
        "\"created\":\"2026-11-%02uT%02u:%02u:%02u.%03uZ\",\"active\":%s,\"score\":%u.%02u,"
        "\"tags\":[\"%s\",\"%s\"],\"geo\":{\"lat\":%u.%04u,\"lon\":%u.%04u},"
        "\"history\":[%u,%u,%u,%u]}",
        id == 0 ? "" : ",", 100000 + next(900000), user, user, 1 + next(30), next(24), next(60),
        next(60), next(1000), next(2) ? "true" : "false", next(100), next(100),
        kWords[next(std::size(kWords))], kWords[next(std::size(kWords))], next(90), next(10000),
        next(180), next(10000), next(1000), next(1000), next(1000), next(1000));
    if (out.size() + static_cast<std::size_t>(n) + kJsonTail.size() > size) break;
    out.append(rec, static_cast<std::size_t>(n));
  }
  std::string_view note = out.size() == kJsonHead.size() ? "{\"note\":\"" : ",{\"note\":\"";
  std::size_t room = size - kJsonTail.size() - out.size();
  if (room > note.size() + 2) {  // 2: the closing "}
    out += note;
    std::size_t text_end = out.size() + room - note.size() - 2;
    while (out.size() < text_end) {
      out += kWords[next(std::size(kWords))];
      out += ' ';
    }
    out.resize(text_end);
    out += "\"}";
  }
  out.append(size - kJsonTail.size() - out.size(), ' ');  // too little room for a note
  out += kJsonTail;
  return out;
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
  double rate = 0;                // connect: connects a second, paced (0: closed loop)
  bool tls = false;               // wss:// (the server's certificate is not checked: a bench)
  bool resume = false;            // offer the last session: resumed handshakes
  bool deflate = false;           // offer permessage-deflate, no context takeover
  bool json = false;              // JSON-like text payloads (json_payload)
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
  std::uint64_t payload_sent = 0, wire_sent = 0, wire_received = 0;  // payload received: bytes
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
      : opt_(o), group_(g), connections_(connections), seq_at_(o.json ? kJsonSeqAt : 0) {
    if (o.json) {
      std::string json = json_payload(o.size);
      const auto* j = reinterpret_cast<const std::byte*>(json.data());
      pattern_.assign(j, j + json.size());
    } else {
      pattern_.resize(o.size);
      for (std::size_t i = 0; i < o.size; ++i)
        pattern_[i] = static_cast<std::byte>(o.text ? 'a' + i % 26 : (i * 131 + 7) & 0xFF);
    }
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
    if (paced()) {
      // Every slot is free; the ticks start them at the rate.
      for (unsigned i = connections_; i-- > 0;) free_slots_.push_back(i);
      next_to_open_ = connections_;
      reactor_->schedule(kPaceTickMs, &LoadApp::pace_tick, this);
      return;
    }
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
    // The client role counts each answer that accepted its offer before on_open: a server that
    // declined would otherwise be measured as if it compressed (an error; the run goes on).
    if (opt_.deflate && ep_->counters().deflate_negotiated.get() != opened_) {
      ++errors_;
      if (errors_ <= 5) std::fprintf(stderr, "wsload: the server declined permessage-deflate\n");
    }
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
    if (paced()) {
      free_slots_.push_back(ep_->state(c)->index);
      return;  // the ticks start the next connects, and end the run once every slot is free
    }
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
    group_.payload_sent += payload_sent_;
    if (measuring_) {
      // A thread whose last message came before the window's end has not taken its snapshot.
      Wire end = past_end_ ? wire_end_ : wire();
      group_.wire_sent += end.sent - wire_start_.sent;
      group_.wire_received += end.received - wire_start_.received;
    }
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
    bool ok = op == Opcode::kText && p.size() == pattern_.size();
    for (std::size_t i = seq_at_; ok && i < seq_at_ + 8; ++i) {
      auto ch = static_cast<char>(p[i]);
      if (ch >= '0' && ch <= '9')
        seq = seq << 4 | static_cast<unsigned>(ch - '0');
      else if (ch >= 'a' && ch <= 'f')
        seq = seq << 4 | static_cast<unsigned>(ch - 'a' + 10);
      else
        ok = false;
    }
    ok = ok && seq < pub_sent_ && seq >= pub_done_ && same_around_seq(p);
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
    std::byte* field = send_buf_.data() + opt_.prefix.size() + seq_at_;
    for (std::size_t i = 0; i < 8; ++i)
      field[i] = static_cast<std::byte>(kHex[(seq >> (4 * (7 - i))) & 15]);
    pub_at_[seq % kRing] = t;
    if (in_window(t)) payload_sent_ += send_buf_.size();
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

  bool paced() const { return opt_.mode == "connect" && opt_.rate > 0; }

  // --rate: starts the connects due by now on free slots. A run whose slots are all in progress
  // falls behind and does not catch up later: its achieved rate is what the summary reports.
  static void pace_tick(void* ctx, io::Reactor& r) {
    auto* self = static_cast<LoadApp*>(ctx);
    std::uint64_t t = r.now_ns();
    if (self->finished(t)) {
      if (self->free_slots_.size() == self->connections_)
        self->done();
      else
        r.schedule(kPaceTickMs, &LoadApp::pace_tick, self);  // connects still in progress
      return;
    }
    // Counted from the first tick: the reactor's clock before it is the constructor's, and the
    // threads' start-up would otherwise be owed in one burst.
    if (self->pace_start_ == 0) self->pace_start_ = t;
    double per_thread = self->opt_.rate / self->opt_.threads;
    auto due =
        static_cast<std::uint64_t>(static_cast<double>(t - self->pace_start_) * 1e-9 * per_thread);
    while (self->paced_ < due && !self->free_slots_.empty()) {
      unsigned slot = self->free_slots_.back();
      self->free_slots_.pop_back();
      self->connect_slot(slot);
      ++self->paced_;
    }
    self->paced_ = std::max(self->paced_, due);
    r.schedule(kPaceTickMs, &LoadApp::pace_tick, self);
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

  struct Wire {
    std::uint64_t sent = 0, received = 0;
  };
  Wire wire() const {
    return {reactor_->counters().bytes_out.get(), reactor_->counters().bytes_in.get()};
  }

  // Whether t is inside the measured window. At its edges (once per thread: the shared flags
  // are not for every late echo) it marks them and takes the wire snapshots, so wire and
  // payload bytes cover the same messages.
  bool in_window(std::uint64_t t) {
    if (measure_start_ == 0 || t < measure_start_) return false;
    if (t >= measure_end_) {
      if (!past_end_) {
        past_end_ = true;
        wire_end_ = wire();
        group_.mark_end();
      }
      return false;
    }
    if (!measuring_) {
      measuring_ = true;
      wire_start_ = wire();
      group_.mark_start();
    }
    return true;
  }

  void record_if_measuring(std::uint64_t t, std::uint64_t latency, std::size_t bytes) {
    if (!in_window(t)) return;
    hist_.record(latency);
    bytes_ += bytes;
  }

  // The 8 payload bytes at seq_at_ carry the message's sequence number; the rest is the pattern.
  void stamp(std::uint64_t seq) {
    std::size_t n = std::min<std::size_t>(8, send_buf_.size() - seq_at_);
    for (std::size_t i = 0; i < n; ++i) {
      auto nibble = static_cast<std::uint8_t>((seq >> (8 * i)) & 0xFF);
      send_buf_[seq_at_ + i] = static_cast<std::byte>(opt_.text ? 'a' + (nibble & 15) : nibble);
    }
  }

  // p (of the pattern's size) is the pattern outside the sequence field.
  bool same_around_seq(std::span<const std::byte> p) const {
    std::size_t end = std::min(seq_at_ + 8, p.size());
    return std::memcmp(p.data(), pattern_.data(), seq_at_) == 0 &&
           std::memcmp(p.data() + end, pattern_.data() + end, p.size() - end) == 0;
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
    if (in_window(t)) payload_sent_ += send_buf_.size();
    s.conn.send(opt_.text ? Opcode::kText : Opcode::kBinary, send_buf_);
  }

  bool verify(const Conn& s, Opcode op, std::span<const std::byte> p) {
    if (op != (opt_.text ? Opcode::kText : Opcode::kBinary) || p.size() != pattern_.size())
      return false;
    stamp(s.received);
    std::size_t n = std::min<std::size_t>(8, p.size() - seq_at_);
    return std::memcmp(p.data() + seq_at_, send_buf_.data() + seq_at_, n) == 0 &&
           same_around_seq(p);
  }

  void done() { reactor_->exit_when_idle(); }

  const Options& opt_;
  Group& group_;
  const unsigned connections_;  // this thread's share
  const std::size_t seq_at_;    // where in the payload the sequence field is
  StartTask start_task_;
  ws::Endpoint<LoadApp>* ep_ = nullptr;
  io::Reactor* reactor_ = nullptr;
  std::vector<std::byte> pattern_, send_buf_;
  std::vector<Conn> conns_;
  std::vector<std::uint64_t> sent_at_;
  Histogram hist_;
  std::uint64_t bytes_ = 0, errors_ = 0, payload_sent_ = 0;
  Wire wire_start_, wire_end_;  // the reactor's socket bytes at the window's edges
  std::uint64_t measure_start_ = 0, measure_end_ = 0;  // the group's window, once it opened
  unsigned next_to_open_ = 0, connecting_ = 0, opened_ = 0, closed_ = 0, ready_ = 0;
  static constexpr std::uint32_t kPaceTickMs = 10;  // the reactor's timer tick
  std::vector<unsigned> free_slots_;                // --rate: slots not in progress
  std::uint64_t pace_start_ = 0, paced_ = 0;        // --rate: when pacing began, connects due
  std::uint64_t pub_sent_ = 0, pub_done_ = 0;       // fanout: triggers sent, publishes complete
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
      "\"opened\":%u,\"loader_cpu_pct\":%.1f,\"tls\":%s,\"resumed\":%llu,\"deflate\":%s,"
      "\"json\":%s,\"payload_sent\":%llu,\"wire_sent\":%llu,\"payload_received\":%llu,"
      "\"wire_received\":%llu}\n",
      opt.mode.c_str(), opt.connections, opt.inflight, opt.size, opt.text ? "true" : "false",
      opt.threads, secs, static_cast<unsigned long long>(h.count()), rate, mbps,
      us(h.percentile(50)), us(h.percentile(99)), us(h.percentile(99.9)), us(h.max()),
      static_cast<unsigned long long>(g.errors), g.opened, cpu, opt.tls ? "true" : "false",
      static_cast<unsigned long long>(g.resumed), opt.deflate ? "true" : "false",
      opt.json ? "true" : "false", static_cast<unsigned long long>(g.payload_sent),
      static_cast<unsigned long long>(g.wire_sent), static_cast<unsigned long long>(g.bytes),
      static_cast<unsigned long long>(g.wire_received));
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
      "              [--rate R (connect)]\n"
      "              [--prefix TEXT (fanout)] [--deflate] [--json (echo, "
      "fanout)]\n",
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
    else if (a == "--rate")
      o.rate = std::stod(value());
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
    else if (a == "--deflate")
      o.deflate = true;
    else if (a == "--json")
      o.json = o.text = true;
    else
      usage(("unknown flag " + a).c_str());
  }
  if (!have_target) usage("--connect HOST:PORT is required");
  // An echo carries the prefix back, and its check stamps the first bytes: only fanout strips it.
  if (!o.prefix.empty() && o.mode != "fanout") usage("--prefix applies to fanout only");
  if (o.path.empty() || o.path[0] != '/') usage("--target must start with '/'");
  if (o.json && o.mode != "echo" && o.mode != "fanout") usage("--json applies to echo and fanout");
  if (o.json && o.size < kJsonHead.size() + kJsonTail.size())
    usage("--json needs --size of at least 29");
  if (o.connections == 0 || o.inflight == 0) usage("connections and inflight must be at least 1");
  if (!std::isfinite(o.rate) || o.rate < 0 || o.rate > 1e7 || (o.rate > 0 && o.mode != "connect"))
    usage("--rate takes connects a second (up to 10,000,000) and only in connect mode");
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
    if (opt.deflate) ec.deflate.mode = ws::DeflateMode::kNoContextTakeover;
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
  // The server must also have compressed what it sent: JSON text always compresses well below
  // its size, so its wire bytes tell (a server may send any message uncompressed, RFC 7692 §6).
  if (opt.deflate && opt.json && group.bytes > 0 && group.wire_received >= group.bytes) {
    std::fprintf(stderr,
                 "wsload: --deflate, but the server's messages came uncompressed (%llu wire bytes "
                 "for %llu payload bytes)\n",
                 static_cast<unsigned long long>(group.wire_received),
                 static_cast<unsigned long long>(group.bytes));
    ++group.errors;
  }
  bench::print_summary(group);
  return group.errors || failed ? 1 : 0;
}
