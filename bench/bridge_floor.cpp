// bridge_floor: what libzmq alone costs the bridge per message, with no WebSocket and no clients.
//
//   bridge_floor --connect ENDPOINT -k IN_FLIGHT --size BYTES --duration S --warmup S
//
// A DEALER, as a core of `wsedge --app bridge` holds one, keeps IN_FLIGHT `MESSAGE` events
// (header, empty meta, payload: the edge's three frames, the payload copied into a libzmq
// message as the edge copies it) in flight to `bridge_echo_backend`, and answers every `SEND`
// that comes back with a new `MESSAGE`: a wake-up's answers go together as the edge sends a
// turn's events, and it waits on ZMQ_FD as the edge's reactor does. It leaves out all the edge
// does besides: the clients' sockets, WebSocket framing, the window's reference-counted copies
// of unacknowledged events, the connection table. Its CPU per round trip (its own thread and
// libzmq's I/O thread) is what libzmq costs per message with the edge's framing, measured at
// a higher rate and deeper batches than the bridge reaches behind its clients, which lowers
// it; the bridge's echo is compared with the direct echo plus this (bench/README.md, "The
// bridge").
//
// Output is wsload's: `measure-start` and `measure-end` on stdout at the edges of the window
// (bench/compare reads each process's CPU there), then one line of JSON with `count` (round
// trips in the window), `rate` and `waits` (times it found nothing and waited on the fd).
#include <poll.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "bridge/io_threads.hpp"
#include "bridge/protocol.hpp"

namespace {

using namespace wsedge::bridge;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string connect;
  int inflight = 400;
  std::size_t size = 16;
  double duration = 5, warmup = 1;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "bridge_floor: %s\nusage: bridge_floor --connect ENDPOINT [-k IN_FLIGHT] "
               "[--size BYTES] [--duration S] [--warmup S]\n",
               why);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    if (i + 1 >= argc) usage(("missing value for " + f).c_str());
    const char* v = argv[++i];
    if (f == "--connect")
      a.connect = v;
    else if (f == "-k")
      a.inflight = std::atoi(v);
    else if (f == "--size")
      a.size = std::strtoull(v, nullptr, 10);
    else if (f == "--duration")
      a.duration = std::atof(v);
    else if (f == "--warmup")
      a.warmup = std::atof(v);
    else
      usage(("unknown flag " + f).c_str());
  }
  if (a.connect.empty()) usage("--connect is required");
  if (a.inflight < 1 || a.duration <= 0 || a.warmup < 0)
    usage("-k, --duration, --warmup out of range");
  return a;
}

class Floor {
 public:
  Floor(zmq::context_t& ctx, const Args& a)
      : sock_(ctx, zmq::socket_type::dealer), payload_(a.size, 'x') {
    // The edge's defaults (bridge/options.hpp, bridge/link.cpp's set_common).
    sock_.set(zmq::sockopt::sndhwm, 10000);
    sock_.set(zmq::sockopt::rcvhwm, 10000);
    sock_.set(zmq::sockopt::linger, 0);
    sock_.set(zmq::sockopt::routing_id, "floor/0");
    sock_.connect(a.connect);
    head_ = encode_header({kVersion, Type::kMessage, flag::kBinary, {1, 1, 0, 1, 1}});
  }

  // One edge event: header and meta (small: held inside the message), the payload copied.
  void send_message() {
    zmq::message_t parts[3];
    parts[0].rebuild(head_.data(), head_.size());
    parts[2].rebuild(payload_.data(), payload_.size());
    for (int i = 0; i < 3; ++i) {
      if (zmq_msg_send(parts[i].handle(), sock_.handle(),
                       ZMQ_DONTWAIT | (i < 2 ? ZMQ_SNDMORE : 0)) < 0)
        throw zmq::error_t();
    }
  }

  // Every message that is there; the SENDs among them are counted and owed a new MESSAGE.
  int receive() {
    int sends = 0;
    for (;;) {
      int n = 0;
      Header h{};
      bool is_send = false;
      for (bool more = true; more; ++n) {
        zmq::message_t m;
        if (zmq_msg_recv(m.handle(), sock_.handle(), ZMQ_DONTWAIT) < 0) {
          if (zmq_errno() == EAGAIN && n == 0) return sends;
          throw zmq::error_t();
        }
        if (n == 0)
          is_send = decode_header({static_cast<const std::byte*>(m.data()), m.size()}, h) ==
                        HeaderError::kOk &&
                    h.type == Type::kSend;
        more = m.more();
      }
      sends += is_send;
    }
  }

  zmq::socket_t& socket() { return sock_; }

 private:
  zmq::socket_t sock_;
  std::string payload_;
  std::array<std::byte, kHeaderSize> head_{};
};

}  // namespace

int main(int argc, char** argv) {
  Args a = parse(argc, argv);
  zmq::context_t ctx;
  wsedge::bridge::configure_io_threads(ctx, 1);  // as the edge's: one I/O thread, run as it runs it
  Floor f(ctx, a);
  for (int i = 0; i < a.inflight; ++i) f.send_message();
  // Waited on as the edge waits on it (its reactor polls ZMQ_FD): the fd signals "look", and
  // receiving until EAGAIN, again after every send, re-arms it. zmq_poll would add a
  // ZMQ_EVENTS read and a poll() per wake-up that the edge does not make.
  pollfd pfd{f.socket().get(zmq::sockopt::fd), POLLIN, 0};
  auto start = Clock::now() +
               std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(a.warmup));
  auto end = start +
             std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(a.duration));
  bool measuring = false;
  std::uint64_t count = 0, waits = 0;
  for (;;) {
    auto now = Clock::now();
    if (!measuring && now >= start) {
      std::puts("measure-start");
      std::fflush(stdout);
      measuring = true;
    }
    if (now >= end) break;
    int done = f.receive();
    if (done == 0) {
      poll(&pfd, 1, 100);
      waits += measuring;
      continue;
    }
    if (measuring) count += static_cast<std::uint64_t>(done);
    for (int i = 0; i < done; ++i) f.send_message();
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::puts("measure-end");
  std::fflush(stdout);
  std::printf(
      "{\"mode\":\"bridge-floor\",\"inflight\":%d,\"size\":%zu,\"seconds\":%.3f,\"count\":%llu,"
      "\"rate\":%.1f,\"waits\":%llu,\"loader_cpu_pct\":0,\"p99_us\":0,\"errors\":0,"
      "\"payload_sent\":0,\"wire_sent\":0,\"payload_received\":0,\"wire_received\":0}\n",
      a.inflight, a.size, secs, static_cast<unsigned long long>(count),
      static_cast<double>(count) / secs, static_cast<unsigned long long>(waits));
  std::fflush(stdout);
  return count ? 0 : 1;
}
