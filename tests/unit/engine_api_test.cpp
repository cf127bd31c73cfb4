// What the engine offers applications, and the defects a review found in it, on real sockets:
// stale handles, teardown outside on_data, half-close, completions and fd watches, timers,
// pause/resume, deferred upgrades, ping timeouts, listener index and peer address.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/io/reactor.hpp"
#include "engine/ws/endpoint.hpp"
#include "temp_cert.hpp"
#include "test_bytes.hpp"
#include "test_reactor.hpp"
#include "tls/context.hpp"

namespace wsedge {
namespace {

using protocol::Opcode;
using ws::Connection;

// Listens on 127.0.0.1:0 through the reactor; returns the port.
std::uint16_t listen_on(io::Reactor& r, unsigned* index = nullptr) {
  io::Address a = io::parse_address("127.0.0.1:0");
  int fd = io::open_listener(a, 64);
  std::uint16_t port = io::local_address(fd).port();
  unsigned i = r.listen(fd);
  if (index) *index = i;
  return port;
}

constexpr std::string_view kUpgrade =
    "GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

// A blocking TCP client for byte-exact conversations. Connected before the reactor runs: the
// kernel completes the handshake from the listen backlog.
struct RawClient {
  int fd = -1;
  explicit RawClient(std::uint16_t port) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) ADD_FAILURE() << "connect";
  }
  ~RawClient() {
    if (fd >= 0) ::close(fd);
  }
  std::uint16_t local_port() const {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    return ntohs(a.sin_port);
  }
  void send(std::string_view s) const {
    while (!s.empty()) {
      ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      s.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  void send(const test::Bytes& b) const { send(test::str(b)); }
  // Reads (as read() does) on a thread of its own while the reactor runs on this one, then
  // shuts the socket down: our FIN ends the server's linger.
  std::thread read_then_leave(std::string& out, int ms,
                              std::function<bool(const std::string&)> done = {}) const {
    return std::thread([this, &out, ms, done] {
      out = read(ms, done);
      ::shutdown(fd, SHUT_RDWR);
    });
  }
  // Reads until EOF, until done(bytes so far) or until `ms` pass.
  std::string read(int ms, const std::function<bool(const std::string&)>& done = {}) const {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    char buf[65536];
    while (!(done && done(out))) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }
};

// The bytes after the response header, or npos-safe empty when there is none.
std::string after_head(const std::string& resp) {
  std::size_t e = resp.find("\r\n\r\n");
  return e == std::string::npos ? std::string() : resp.substr(e + 4);
}

// A server frame's payload (unmasked, as servers send), from the start of `s`.
struct ServerFrame {
  int opcode = -1;
  int rsv = 0;
  std::string payload;
  std::size_t size = 0;  // header + payload; 0 when incomplete
};
ServerFrame parse_server_frame(std::string_view s) {
  ServerFrame f;
  if (s.size() < 2) return f;
  protocol::FrameHeader h;
  if (protocol::parse_frame_header(reinterpret_cast<const std::byte*>(s.data()), s.size(), h) !=
          protocol::HeaderParse::kOk ||
      s.size() < h.size + h.payload_len)
    return f;
  f.opcode = h.opcode;
  f.rsv = h.rsv;
  f.payload = std::string(s.substr(h.size, h.payload_len));
  f.size = h.size + h.payload_len;
  return f;
}

// A server-side application that records what happens and lets each test add behaviour.
struct Recorder {
  struct ConnState {
    int tag = 0;
  };
  ws::Endpoint<Recorder>* ep = nullptr;
  io::Reactor* reactor = nullptr;
  bool echo = true;
  std::function<void(Connection)> opened;
  std::function<ws::UpgradeDecision(Connection)> upgrade;
  std::function<void(Connection, std::uint16_t)> closed;
  // After a message is recorded, instead of the echo.
  std::function<void(Connection, Opcode, std::span<std::byte>)> message;
  std::vector<std::string> messages;
  std::vector<std::uint16_t> close_codes;

  ws::UpgradeDecision on_upgrade(Connection c, const protocol::UpgradeRequest&) {
    return upgrade ? upgrade(c) : ws::UpgradeDecision{};
  }
  void on_open(Connection c) {
    if (opened) opened(c);
  }
  void on_message(Connection c, Opcode op, std::span<std::byte> p) {
    messages.push_back(test::str(p));
    if (message)
      message(c, op, p);
    else if (echo && !c.is_client())
      c.send(op, p);
  }
  void on_close(Connection c, std::uint16_t code, std::string_view) {
    close_codes.push_back(code);
    if (closed) closed(c, code);
  }
  void on_drain(Connection) {}
  void stop() {
    reactor->stop_listening();
    reactor->exit_when_idle();
  }
};

// One reactor serving one Recorder; tests take its parts by reference.
struct Server {
  io::Reactor reactor{test::small_reactor(), 0};
  Recorder app;
  ws::Endpoint<Recorder> ep;
  explicit Server(const ws::EndpointConfig& cfg = {}) : ep(reactor, cfg, app) {
    app.ep = &ep;
    app.reactor = &reactor;
  }
  struct Parts {
    io::Reactor& reactor;
    Recorder& app;
    ws::Endpoint<Recorder>& ep;
  };
  Parts parts() { return {reactor, app, ep}; }
  // A wss listener with `cert` and a plain one beside it: {tls port, plain port}.
  std::pair<std::uint16_t, std::uint16_t> tls_and_plain(const test::TempCert& cert) {
    ep.set_tls(tls::Context::load({{{cert.cert, cert.key}}}));
    unsigned plain_index = 0;
    std::uint16_t tls_port = listen_on(reactor);
    std::uint16_t plain_port = listen_on(reactor, &plain_index);
    ep.set_listener_plain(plain_index);
    return {tls_port, plain_port};
  }
};

// Runs fn(ctx) `ms` from now on the reactor.
struct Later {
  std::function<void()> fn;
  static void run(void* self, io::Reactor&) { static_cast<Later*>(self)->fn(); }
  void after(io::Reactor& r, std::uint32_t ms) { r.schedule(ms, run, this); }
};

TEST(EngineApi, StaleHandlesAnswerAsClosed) {
  Server srv;
  auto [reactor, app, ep] = srv.parts();  // references, all three
  io::Address addr = io::parse_address("127.0.0.1:0");
  addr.set_port(listen_on(reactor));
  std::vector<Connection> old;  // every handle of every connection that has ended
  std::vector<Connection> live;
  int rounds = 0;
  app.opened = [&](Connection c) {
    ep.state(c)->tag = rounds;
    if (!c.is_client()) return;
    if (rounds < 4) {
      c.close();
      return;
    }
    // The last connection stays open while the old handles are tried: their slots now hold
    // this connection or its server side.
    live.push_back(c);
    for (Connection o : old) {
      EXPECT_FALSE(o.open());
      EXPECT_FALSE(o.current());
      EXPECT_FALSE(o.is_client());
      EXPECT_EQ(ep.state(o), nullptr);
      EXPECT_EQ(o.send_text("x"), ws::SendResult::kClosed);
      EXPECT_EQ(o.peer(), io::PeerAddress{});
      EXPECT_FALSE(o.decide({}));
      o.close();
      o.pause_reading();
    }
    bool reused = false;
    for (Connection o : old) reused |= o.id().idx == c.id().idx;
    EXPECT_TRUE(reused) << "no slot was reused: the test proves nothing";
    EXPECT_TRUE(c.open());
    EXPECT_EQ(ep.state(c)->tag, 4);
    c.close();
  };
  app.closed = [&](Connection c, std::uint16_t) {
    old.push_back(c);
    if (!c.is_client()) return;
    if (++rounds <= 4)
      ep.connect(addr, "localhost", "/");
    else
      app.stop();
  };
  ep.connect(addr, "localhost", "/");
  reactor.run(ep);
  EXPECT_EQ(live.size(), 1u);

  Connection none;
  EXPECT_FALSE(none.open());
  EXPECT_FALSE(none.current());
  EXPECT_FALSE(none.is_client());
  EXPECT_EQ(none.send_text("x"), ws::SendResult::kClosed);
  EXPECT_EQ(none.buffered(), 0u);
  EXPECT_FALSE(none.decide({}));
  none.close();
  none.resume_reading();
}

TEST(EngineApi, SendFailingOutsideOnDataGivesTheConnectionsStorageBack) {
  // The client holds an unfinished message in the server's reader, then stops reading; a timer
  // (not on_data) sends past the outbound limit. Before the one teardown path, that send
  // aborted without reset(): the reader's buffer stayed allocated until the slot was reused.
  ws::EndpointConfig cfg;
  cfg.max_outbound = 64 << 10;
  Server srv(cfg);
  auto [reactor, app, ep] = srv.parts();  // references, all three
  RawClient client(listen_on(reactor));
  client.send(kUpgrade);
  client.send(test::frame(1, "the first half of a message", false));
  std::vector<char> big(256 << 10, 'b');
  ws::SendResult sent = ws::SendResult::kOk;
  std::uint64_t in_use_after = 99;
  Later send_big, check;
  app.opened = [&](Connection c) {
    send_big.fn = [&, c] {
      sent = c.send_binary(std::as_bytes(std::span(big)));
      check.after(reactor, 50);
    };
    send_big.after(reactor, 50);
  };
  check.fn = [&] {
    in_use_after = reactor.pool().in_use();
    app.stop();
  };
  reactor.run(ep);
  EXPECT_EQ(sent, ws::SendResult::kClosed);
  EXPECT_EQ(app.close_codes, std::vector<std::uint16_t>{1008});
  EXPECT_EQ(ep.counters().backlog_exceeded, 1u);
  EXPECT_EQ(in_use_after, 0u);
}

TEST(EngineApi, AHalfClosedClientGetsEveryReply) {
  // A client that sends a message and then shuts down its write side still reads: the echo
  // must reach it before our FIN. Before, the FIN aborted the connection and dropped it.
  for (std::size_t size : {std::size_t{15}, std::size_t{64} << 10, std::size_t{1} << 20}) {
    io::Reactor reactor(test::small_reactor(), 0);
    Recorder app;
    ws::Endpoint<Recorder> ep(reactor, {}, app);
    app.ep = &ep;
    app.reactor = &reactor;
    app.closed = [&](Connection, std::uint16_t) { app.stop(); };
    RawClient client(listen_on(reactor));
    std::string payload(size, 'h');
    for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<char>('a' + i % 26);
    std::string got;
    std::thread t([&] {
      client.send(kUpgrade);
      client.send(test::frame(2, payload));
      ::shutdown(client.fd, SHUT_WR);
      got = client.read(10000);
    });
    reactor.run(ep);
    t.join();
    ServerFrame f = parse_server_frame(after_head(got));
    EXPECT_EQ(f.opcode, 2) << size;
    EXPECT_EQ(f.payload.size(), size);
    EXPECT_TRUE(f.payload == payload) << size;
    EXPECT_EQ(app.close_codes, std::vector<std::uint16_t>{1006});
    EXPECT_EQ(reactor.counters().peer_half_closes, 1u);
  }
}

TEST(EngineApi, AForeignFdIsWatchedAndDrained) {
  io::Reactor reactor(test::small_reactor(), 0);
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  struct Drain : io::FdWatch {
    std::uint64_t total = 0;
    unsigned wakeups = 0;
  } w;
  w.fd = efd;
  w.ready = [](io::FdWatch* self, io::Reactor& on, int revents) {
    auto* d = static_cast<Drain*>(self);
    ASSERT_GT(revents, 0);
    ++d->wakeups;
    std::uint64_t v = 0;
    while (::read(d->fd, &v, sizeof v) == sizeof v) d->total += v;  // drain: edge semantics
    if (d->total >= 10) {
      on.unwatch(d);
      on.exit_when_idle();
    }
  };
  reactor.watch(&w);
  std::thread writer([efd] {
    for (int i = 0; i < 10; ++i) {
      std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(efd, &one, sizeof one);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  test::NoSockets h;
  reactor.run(h);
  writer.join();
  EXPECT_EQ(w.total, 10u);
  EXPECT_GE(w.wakeups, 1u);
  EXPECT_FALSE(w.wanted);
  ::close(efd);
}

TEST(EngineApi, ACompletionOfTheCallersOwnOperation) {
  io::Reactor reactor(test::small_reactor(), 0);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  struct ReadOp : io::Completion {
    char buf[16] = {};
    int res = -1;
  } op;
  op.done = [](io::Completion* self, io::Reactor& on, const io_uring_cqe& cqe) {
    static_cast<ReadOp*>(self)->res = cqe.res;
    on.exit_when_idle();
  };
  io_uring_prep_read(reactor.submit(&op), fds[0], op.buf, sizeof op.buf, 0);
  ASSERT_EQ(::write(fds[1], "hello", 5), 5);
  test::NoSockets h;
  reactor.run(h);
  EXPECT_EQ(op.res, 5);
  EXPECT_EQ(std::string(op.buf), "hello");
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(EngineApi, TimersFireInOrderAndCancel) {
  io::Reactor reactor(test::small_reactor(), 0);
  struct Ctx {
    std::vector<int> fired;
    io::TimerId self;
  };
  Ctx a, b, c;
  struct Entry {
    Ctx* ctx;
    int name;
  } ea{&a, 1}, eb{&b, 2}, ec{&c, 3};
  auto fn = [](void* e, io::Reactor& on) {
    auto* en = static_cast<Entry*>(e);
    en->ctx->fired.push_back(en->name);
    // A timer that ran cannot be cancelled any more.
    EXPECT_FALSE(on.cancel(en->ctx->self));
    if (en->name == 1) on.exit_when_idle();
  };
  a.self = reactor.schedule(60, fn, &ea);
  b.self = reactor.schedule(20, fn, &eb);
  c.self = reactor.schedule(40, fn, &ec);
  EXPECT_TRUE(reactor.cancel(c.self));
  EXPECT_FALSE(reactor.cancel(c.self));
  auto t0 = std::chrono::steady_clock::now();
  test::NoSockets h;
  reactor.run(h);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  EXPECT_EQ(a.fired, std::vector<int>{1});
  EXPECT_EQ(b.fired, std::vector<int>{2});
  EXPECT_TRUE(c.fired.empty());
  EXPECT_GE(ms.count(), 60);
}

TEST(EngineApi, PausedReadingHoldsMessagesUntilResumed) {
  Server srv;
  auto [reactor, app, ep] = srv.parts();  // references, all three
  io::Address addr = io::parse_address("127.0.0.1:0");
  addr.set_port(listen_on(reactor));
  std::size_t seen_while_paused = 99;
  Later resume, poll_done;
  app.opened = [&](Connection c) {
    if (c.is_client()) {
      for (std::string_view m : {"m0", "m1", "m2"}) c.send_text(m);
      return;
    }
    c.pause_reading();
    EXPECT_TRUE(reactor.reading_paused(c.id()));
    resume.fn = [&, c] {
      seen_while_paused = app.messages.size();
      c.resume_reading();
      EXPECT_FALSE(reactor.reading_paused(c.id()));
    };
    resume.after(reactor, 100);
  };
  app.closed = [&](Connection c, std::uint16_t) {
    if (c.is_client()) app.stop();
  };
  ws::Connection client = ep.connect(addr, "localhost", "/");
  // Three messages reach the server after the resume, and their three echoes the client.
  poll_done.fn = [&] {
    if (app.messages.size() >= 6)
      client.close();
    else
      poll_done.after(reactor, 10);
  };
  poll_done.after(reactor, 10);
  reactor.run(ep);
  EXPECT_EQ(seen_while_paused, 0u);
  EXPECT_EQ(app.messages.size(), 6u);
}

TEST(EngineApi, AnUpgradeDecidedFiftyMillisecondsLater) {
  Server srv;
  auto [reactor, app, ep] = srv.parts();  // references, all three
  io::Address addr = io::parse_address("127.0.0.1:0");
  addr.set_port(listen_on(reactor));
  Later decide, finish;
  bool decided = false;
  std::chrono::steady_clock::time_point asked, opened;
  app.upgrade = [&](Connection c) {
    asked = std::chrono::steady_clock::now();
    ep.state(c)->tag = 7;  // state set during the upgrade survives into the connection
    decide.fn = [&, c] { decided = c.decide({}); };
    decide.after(reactor, 50);
    return ws::UpgradeDecision::pending();
  };
  app.opened = [&](Connection c) {
    if (c.is_client()) {
      opened = std::chrono::steady_clock::now();
      c.send_text("after the wait");
    } else {
      EXPECT_EQ(ep.state(c)->tag, 7);
    }
  };
  app.closed = [&](Connection c, std::uint16_t) {
    if (c.is_client()) app.stop();
  };
  ws::Connection client = ep.connect(addr, "localhost", "/");
  finish.fn = [&] {
    if (app.messages.size() >= 2)  // the server's copy and the client's echo
      client.close();
    else
      finish.after(reactor, 10);
  };
  finish.after(reactor, 10);
  reactor.run(ep);
  EXPECT_TRUE(decided);
  EXPECT_GE(std::chrono::duration_cast<std::chrono::milliseconds>(opened - asked).count(), 45);
  EXPECT_EQ(ep.counters().upgrades_pending, 1u);
  EXPECT_EQ(app.messages, (std::vector<std::string>{"after the wait", "after the wait"}));
}

TEST(EngineApi, ADeferredRefusalCarriesItsStatusAndHeaders) {
  Server srv;
  auto [reactor, app, ep] = srv.parts();  // references, all three
  RawClient client(listen_on(reactor));
  client.send(kUpgrade);
  Later decide;
  app.upgrade = [&](Connection c) {
    decide.fn = [&, c] {
      EXPECT_TRUE(c.decide(
          ws::UpgradeDecision::refuse(401, "token expired", "WWW-Authenticate: Bearer\r\n")));
      app.stop();
    };
    decide.after(reactor, 20);
    return ws::UpgradeDecision::pending();
  };
  std::string got;
  std::thread t = client.read_then_leave(got, 5000);
  reactor.run(ep);
  t.join();
  EXPECT_EQ(got.rfind("HTTP/1.1 401 ", 0), 0u) << got;
  EXPECT_NE(got.find("token expired"), std::string::npos) << got;
  EXPECT_NE(got.find("WWW-Authenticate: Bearer\r\n"), std::string::npos) << got;
  EXPECT_TRUE(app.close_codes.empty());
}

TEST(EngineApi, AClientThatLeavesWhileItsUpgradeIsPending) {
  Server srv;
  auto [reactor, app, ep] = srv.parts();  // references, all three
  auto client = std::make_unique<RawClient>(listen_on(reactor));
  client->send(kUpgrade);
  Later decide;
  bool decided = true;
  std::uint64_t in_use = 99;
  app.upgrade = [&](Connection c) {
    client.reset();  // the client gives up while the application still thinks
    decide.fn = [&, c] {
      decided = c.decide({});
      in_use = reactor.pool().in_use();
      app.stop();
    };
    decide.after(reactor, 50);
    return ws::UpgradeDecision::pending();
  };
  reactor.run(ep);
  EXPECT_FALSE(decided);
  EXPECT_EQ(in_use, 0u);
  EXPECT_EQ(ep.counters().upgrade_abandoned, 1u);
  EXPECT_TRUE(app.close_codes.empty());  // it never opened: no on_close
  EXPECT_EQ(reactor.live(), 0u);
}

TEST(EngineApi, AnUndecidedUpgradeTimesOutWith503) {
  ws::EndpointConfig cfg;
  cfg.upgrade_decision_timeout_ms = 50;
  Server srv(cfg);
  auto [reactor, app, ep] = srv.parts();  // references, all three
  RawClient client(listen_on(reactor));
  client.send(kUpgrade);
  ws::Connection pending;
  Later late;
  bool late_decided = true;
  app.upgrade = [&](Connection c) {
    pending = c;
    late.fn = [&] {
      late_decided = pending.decide({});
      app.stop();
    };
    late.after(reactor, 150);
    return ws::UpgradeDecision::pending();
  };
  std::string got;
  std::thread t = client.read_then_leave(got, 5000);
  reactor.run(ep);
  t.join();
  EXPECT_EQ(got.rfind("HTTP/1.1 503 ", 0), 0u) << got;
  EXPECT_NE(got.find("Retry-After: 5\r\n"), std::string::npos) << got;
  EXPECT_FALSE(late_decided);
  EXPECT_EQ(ep.counters().upgrade_timeouts, 1u);
}

TEST(EngineApi, AnOriginNotAllowedIsRefusedBeforeTheApplicationSeesTheUpgrade) {
  ws::EndpointConfig cfg;
  cfg.allowed_origins = {"https://example.com"};
  Server srv(cfg);
  auto [reactor, app, ep] = srv.parts();  // references, all three
  std::uint16_t port = listen_on(reactor);
  RawClient evil(port), good(port);
  std::string request(kUpgrade);
  request.insert(request.size() - 2, "Origin: https://evil.test\r\n");
  evil.send(request);
  good.send(kUpgrade);  // no Origin: not a browser, allowed
  int upgrades = 0;
  app.upgrade = [&](Connection) {
    ++upgrades;
    return ws::UpgradeDecision{};
  };
  Later stop;
  stop.fn = [&] { app.stop(); };
  stop.after(reactor, 100);
  std::string refused, accepted;
  std::thread t1 = evil.read_then_leave(refused, 5000);
  std::thread t2 = good.read_then_leave(
      accepted, 5000, [](const std::string& s) { return s.find("\r\n\r\n") != std::string::npos; });
  reactor.run(ep);
  t1.join();
  t2.join();
  EXPECT_EQ(refused.rfind("HTTP/1.1 403 ", 0), 0u) << refused;
  EXPECT_EQ(accepted.rfind("HTTP/1.1 101 ", 0), 0u) << accepted;
  EXPECT_EQ(upgrades, 1);
  EXPECT_EQ(ep.counters().origin_refused, 1u);
}

TEST(EngineApi, TheFirstByteDeadlineDropsTheSilentAndTheHandshakeDeadlineRunsFromAccept) {
  ws::EndpointConfig cfg;
  cfg.first_byte_timeout_ms = 300;
  cfg.handshake_timeout_ms = 400;
  cfg.min_recv_rate = 0;  // the deadlines alone
  Server srv(cfg);
  auto [reactor, app, ep] = srv.parts();  // references, all three
  std::uint16_t port = listen_on(reactor);
  RawClient silent(port), partial(port);
  partial.send(std::string_view(kUpgrade).substr(0, 20));
  Later stop;
  stop.fn = [&] { app.stop(); };  // run() returns once both are gone
  stop.after(reactor, 10);
  std::string a, b;
  auto t0 = std::chrono::steady_clock::now();
  auto partial_gone = t0;
  std::thread t1 = silent.read_then_leave(a, 5000);
  std::thread t2([&] {
    b = partial.read(5000);
    partial_gone = std::chrono::steady_clock::now();
  });
  reactor.run(ep);
  t1.join();
  t2.join();
  EXPECT_TRUE(a.empty() && b.empty()) << a << b;  // neither said enough to be answered
  EXPECT_EQ(ep.counters().first_byte_timeouts, 1u);
  EXPECT_EQ(ep.counters().handshake_timeouts, 1u);
  // 400 ms from accept; counted from the end of the first-byte stage it would be 700.
  EXPECT_LT(partial_gone - t0, std::chrono::milliseconds(600));
}

TEST(EngineApi, APingTimeoutSendsClose1011First) {
  ws::EndpointConfig cfg;
  cfg.ping_interval_ms = 30;
  Server srv(cfg);
  auto [reactor, app, ep] = srv.parts();  // references, all three
  app.closed = [&](Connection, std::uint16_t) { app.stop(); };
  RawClient client(listen_on(reactor));
  client.send(kUpgrade);
  std::string got;
  // Never answers the ping; reads until a Close frame has arrived, then leaves.
  auto has_close = [](const std::string& s) {
    std::string rest = after_head(s);
    for (ServerFrame f; !rest.empty(); rest = rest.substr(f.size)) {
      f = parse_server_frame(rest);
      if (f.size == 0) return false;
      if (f.opcode == 8) return true;
    }
    return false;
  };
  std::thread t = client.read_then_leave(got, 5000, has_close);
  reactor.run(ep);
  t.join();
  std::string rest = after_head(got);
  ServerFrame f;
  for (; !rest.empty() && f.opcode != 8; rest = rest.substr(f.size)) {
    f = parse_server_frame(rest);
    if (f.size == 0) break;
  }
  ASSERT_EQ(f.opcode, 8) << "no Close frame";
  ASSERT_GE(f.payload.size(), 2u);
  EXPECT_EQ(
      (static_cast<unsigned char>(f.payload[0]) << 8) | static_cast<unsigned char>(f.payload[1]),
      1011);
  EXPECT_EQ(ep.counters().ping_timeouts, 1u);
  EXPECT_EQ(app.close_codes, std::vector<std::uint16_t>{1011});
}

TEST(EngineApi, EachListenerKeepsItsSchemeAndConnectionsKnowTheirPeer) {
  test::TempCert cert;
  Server srv;
  auto [reactor, app, ep] = srv.parts();  // references, all three
  ep.set_tls(tls::Context::load({{{cert.cert, cert.key}}}));
  unsigned tls_index = 0, plain_index = 0;
  std::uint16_t tls_port = listen_on(reactor, &tls_index);
  std::uint16_t plain_port = listen_on(reactor, &plain_index);
  ep.set_listener_plain(plain_index);
  RawClient on_tls(tls_port);
  RawClient on_plain(plain_port);
  on_tls.send(kUpgrade);  // plain HTTP to the TLS port: a TLS error, not a 101
  on_plain.send(kUpgrade);
  unsigned listener = 99;
  io::PeerAddress peer;
  app.opened = [&](Connection c) {
    listener = c.listener();
    peer = c.peer();
    c.close();
  };
  app.closed = [&](Connection, std::uint16_t) { app.stop(); };
  std::string plain_got, tls_got;
  std::thread t([&] {
    plain_got = on_plain.read(
        5000, [](const std::string& s) { return s.find("\r\n\r\n") != std::string::npos; });
    ::shutdown(on_plain.fd, SHUT_RDWR);  // leave at once rather than wait out the Close
    tls_got = on_tls.read(2000);
  });
  reactor.run(ep);
  t.join();
  EXPECT_NE(tls_index, plain_index);
  EXPECT_EQ(plain_got.rfind("HTTP/1.1 101 ", 0), 0u) << plain_got;
  EXPECT_EQ(tls_got.find("HTTP/1.1"), std::string::npos);
  EXPECT_EQ(listener, plain_index);
  EXPECT_EQ(peer.to_string(false), "127.0.0.1");
  EXPECT_TRUE(peer.is_v4());
  EXPECT_EQ(peer.port, on_plain.local_port());
  EXPECT_GE(ep.counters().tls_errors, 1u);
}

TEST(EngineApi, AProxyListenerTakesThePeerFromTheHeaderAndKeepsTheBytesAfterIt) {
  Server srv;
  auto [reactor, app, ep] = srv.parts();  // references, all three
  unsigned index = 0;
  std::uint16_t port = listen_on(reactor, &index);
  ep.set_listener_proxy(index);
  RawClient direct(port);  // no header: closed without an answer
  direct.send(kUpgrade);
  RawClient proxied(port);
  const std::string header = "PROXY TCP4 203.0.113.7 192.0.2.1 5555 443\r\n";
  io::PeerAddress peer;
  app.opened = [&](Connection c) {
    peer = c.peer();
    c.close();
  };
  app.closed = [&](Connection, std::uint16_t) { app.stop(); };
  std::string direct_got, proxied_got;
  std::thread t([&] {
    direct_got = direct.read(5000);
    // The header a byte at a time, its last byte in one write with the upgrade request: the
    // request must not be lost with the header's buffer.
    for (std::size_t i = 0; i + 1 < header.size(); ++i) {
      proxied.send(header.substr(i, 1));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    proxied.send(std::string(1, header.back()).append(kUpgrade));
    proxied_got = proxied.read(
        5000, [](const std::string& s) { return s.find("\r\n\r\n") != std::string::npos; });
    ::shutdown(proxied.fd, SHUT_RDWR);
  });
  reactor.run(ep);
  t.join();
  EXPECT_EQ(direct_got, "");
  EXPECT_EQ(proxied_got.rfind("HTTP/1.1 101 ", 0), 0u) << proxied_got;
  EXPECT_EQ(peer.to_string(), "203.0.113.7:5555");
  EXPECT_EQ(ep.counters().proxy_headers, 1u);
  EXPECT_EQ(ep.counters().proxy_header_errors, 1u);
}

}  // namespace
}  // namespace wsedge

namespace wsedge {
namespace {

TEST(EngineApi, CountersAreReadFromAnotherThreadWhileTheCoreWritesThem) {
  // An exporter thread reads a core's counters at any time: relaxed atomics, so every value
  // it sees is one the core wrote (no tearing), and a counter never goes backwards.
  Server srv;
  auto [reactor, app, ep] = srv.parts();  // references, all three
  io::Address addr = io::parse_address("127.0.0.1:0");
  addr.set_port(listen_on(reactor));
  int rounds = 0;
  app.opened = [&](Connection c) {
    if (c.is_client()) c.send_text("ping-pong");
  };
  app.echo = true;
  ws::Connection client;
  std::atomic<bool> done{false};
  std::uint64_t reads = 0, backwards = 0, last_bytes = 0, last_msgs = 0;
  std::thread exporter([&] {
    while (!done.load()) {
      std::uint64_t b = reactor.counters().bytes_in.get();
      std::uint64_t m = ep.counters().messages_in.get();
      backwards += (b < last_bytes) + (m < last_msgs);
      last_bytes = b;
      last_msgs = m;
      ++reads;
    }
  });
  Later more;
  more.fn = [&] {
    if (++rounds < 50) {
      client.send_text("ping-pong");
      more.after(reactor, 0);
    } else {
      client.close();
    }
  };
  app.closed = [&](Connection c, std::uint16_t) {
    if (c.is_client()) app.stop();
  };
  client = ep.connect(addr, "localhost", "/");
  more.after(reactor, 10);
  reactor.run(ep);
  done = true;
  exporter.join();
  EXPECT_EQ(backwards, 0u);
  EXPECT_GT(reads, 0u);
  EXPECT_EQ(ep.counters().messages_in.get(), app.messages.size());
  // The table names every counter once.
  std::set<std::string> names;
  for_each_metric<io::ReactorCounters>(io::kReactorMetrics, reactor.counters(),
                                       [&](const auto& m, std::uint64_t) { names.insert(m.name); });
  for_each_metric<ws::EndpointCounters>(
      ws::kEndpointMetrics, ep.counters(),
      [&](const auto& m, std::uint64_t) { names.insert(m.name); });
  EXPECT_EQ(names.size(), std::size(io::kReactorMetrics) + std::size(ws::kEndpointMetrics));
  EXPECT_EQ(sizeof(io::ReactorCounters), std::size(io::kReactorMetrics) * sizeof(Counter))
      << "a reactor counter is missing from kReactorMetrics";
  // Besides the table: the labelled families (closes by code and side, the handshake
  // histogram), which ops/metrics_registry.cpp exports by hand.
  EXPECT_EQ(sizeof(ws::EndpointCounters), std::size(ws::kEndpointMetrics) * sizeof(Counter) +
                                              sizeof(ws::CloseCounters) +
                                              sizeof(ws::HandshakeHistogram))
      << "an endpoint counter is missing from kEndpointMetrics";
}

}  // namespace
}  // namespace wsedge

namespace wsedge {
namespace {

// An application that accepts an extension ("x-flip", RSV1) and so takes each message's RSV
// bits; it answers every message with the same bits set.
struct ExtensionApp {
  io::Reactor* reactor = nullptr;
  bool accept = true;
  std::vector<std::pair<std::uint8_t, std::string>> got;
  ws::UpgradeDecision on_upgrade(Connection, const protocol::UpgradeRequest& req) {
    bool offered = false;
    req.for_each_extension([&](const protocol::Extension& e) { offered |= e.name == "x-flip"; });
    if (!offered || !accept) return {};
    return {.extensions = "x-flip", .rsv = 0x40};
  }
  void on_open(Connection) {}
  void on_message(Connection c, Opcode op, std::span<std::byte> p, std::uint8_t rsv) {
    got.emplace_back(rsv, test::str(p));
    c.send(op, p, true, rsv);
  }
  void on_close(Connection, std::uint16_t, std::string_view) {
    reactor->stop_listening();
    reactor->exit_when_idle();
  }
  void on_drain(Connection) {}
};

std::string ext_upgrade() {
  std::string r(kUpgrade);
  r.insert(r.size() - 2, "Sec-WebSocket-Extensions: x-flip; level=2\r\n");
  return r;
}

// Serves one raw client that offers x-flip and sends `frames`; returns what it read.
std::string converse(ExtensionApp& app, std::initializer_list<test::Bytes> frames,
                     const ws::EndpointConfig& cfg = {}) {
  io::Reactor reactor(test::small_reactor(), 0);
  app.reactor = &reactor;
  ws::Endpoint<ExtensionApp> ep(reactor, cfg, app);
  RawClient client(listen_on(reactor));
  client.send(ext_upgrade());
  for (const test::Bytes& f : frames) client.send(f);
  std::string got;
  std::thread t = client.read_then_leave(got, 5000);
  reactor.run(ep);
  t.join();
  return got;
}

std::uint16_t close_code_of(const ServerFrame& f) {
  return f.payload.size() < 2
             ? 0
             : static_cast<std::uint16_t>((static_cast<unsigned char>(f.payload[0]) << 8) |
                                          static_cast<unsigned char>(f.payload[1]));
}

TEST(EngineApi, AnAcceptedExtensionGetsItsRsvBitsAndValidatesItsOwnText) {
  ExtensionApp app;
  // Text that is not UTF-8 as it travels (a transformed message): the reader leaves it to the
  // extension. Then a plain message, then RSV2, which nobody accepted.
  std::string got =
      converse(app, {test::frame(1, "\xff\xfe transformed", true, true, 0x40),
                     test::frame(1, "plain"), test::frame(2, "rsv2", true, true, 0x20)});
  ASSERT_NE(got.find("Sec-WebSocket-Extensions: x-flip\r\n"), std::string::npos) << got;
  EXPECT_EQ(app.got, (std::vector<std::pair<std::uint8_t, std::string>>{
                         {0x40, "\xff\xfe transformed"}, {0, "plain"}}));
  std::string rest = after_head(got);
  ASSERT_GE(rest.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(rest[0]), 0x80 | 0x40 | 1);  // FIN, RSV1, text
  ServerFrame first = parse_server_frame(rest);
  rest.erase(0, first.size);
  ServerFrame plain = parse_server_frame(rest);
  EXPECT_EQ(static_cast<unsigned char>(rest[0]), 0x81);
  rest.erase(0, plain.size);
  ServerFrame close = parse_server_frame(rest);
  ASSERT_EQ(close.opcode, 8);
  EXPECT_EQ(close_code_of(close), 1002);
}

TEST(EngineApi, AnApplicationsOwnRsv1ExtensionGetsNoDeflateAllowanceOnMaxMessage) {
  // The reader lets a permessage-deflate connection's compressed messages pass max_message by
  // deflate's overhead (the inflater holds the limit itself). An application's own RSV1
  // extension has no such check after the reader: its messages meet the limit there.
  ws::EndpointConfig cfg;
  cfg.max_message = 1000;
  ExtensionApp app;
  std::string got = converse(app, {test::frame(2, std::string(1001, 'x'), true, true, 0x40)}, cfg);
  EXPECT_TRUE(app.got.empty());
  ServerFrame close = parse_server_frame(after_head(got));
  ASSERT_EQ(close.opcode, 8);
  EXPECT_EQ(close_code_of(close), 1009);
}

TEST(EngineApi, WithoutTheExtensionRsv1IsAProtocolError) {
  ExtensionApp app;
  app.accept = false;
  std::string got = converse(app, {test::frame(1, "compressed?", true, true, 0x40)});
  EXPECT_EQ(got.find("Sec-WebSocket-Extensions"), std::string::npos) << got;
  ServerFrame close = parse_server_frame(after_head(got));
  ASSERT_EQ(close.opcode, 8);
  EXPECT_EQ(close_code_of(close), 1002);
  EXPECT_TRUE(app.got.empty());
}

}  // namespace
}  // namespace wsedge

namespace wsedge {
namespace {

TEST(EngineApi, FramesThePeerMustRefuseAreNotSent) {
  Server srv;
  auto [reactor, app, ep] = srv.parts();
  RawClient client(listen_on(reactor));
  client.send(kUpgrade);
  std::vector<ws::SendResult> results;
  app.opened = [&](Connection c) {
    std::string big(126, 'p');
    auto bytes = std::as_bytes(std::span(big));
    results.push_back(c.send(Opcode::kBinary, std::as_bytes(std::span("x", 1)), true, 0x40));
    results.push_back(c.ping(bytes));
    results.push_back(c.send(Opcode::kPing, bytes));
    results.push_back(c.send(Opcode::kPong, {}, false));
    results.push_back(c.send_text("fine"));
    c.close();
  };
  app.closed = [&](Connection, std::uint16_t) { app.stop(); };
  std::string got;
  std::thread t = client.read_then_leave(
      got, 2000, [](const std::string& s) { return s.find("fine") != std::string::npos; });
  reactor.run(ep);
  t.join();
  using R = ws::SendResult;
  EXPECT_EQ(results, (std::vector<R>{R::kInvalid, R::kInvalid, R::kInvalid, R::kInvalid, R::kOk}));
}

TEST(EngineApi, APausedClientStillCompletesTheClosingHandshake) {
  // Its Close answer must be read although the application paused reading; before, every such
  // close ran into the close timeout (and a graceful stop waited that long per client).
  Server srv;
  auto [reactor, app, ep] = srv.parts();
  io::Address addr = io::parse_address("127.0.0.1:0");
  addr.set_port(listen_on(reactor));
  std::chrono::steady_clock::time_point closing, closed;
  std::vector<std::uint16_t> server_codes;
  app.opened = [&](Connection c) {
    if (c.is_client()) return;
    c.pause_reading();
    closing = std::chrono::steady_clock::now();
    c.close(4000, "bye");
  };
  app.closed = [&](Connection c, std::uint16_t code) {
    if (c.is_client()) return;
    closed = std::chrono::steady_clock::now();
    server_codes.push_back(code);
    app.stop();
  };
  ep.connect(addr, "localhost", "/");
  reactor.run(ep);
  EXPECT_EQ(server_codes, std::vector<std::uint16_t>{4000});
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(closed - closing).count(), 1000);
}

TEST(EngineApi, AClientWhoseConnectIsRefusedStillHasItsStateInOnClose) {
  // The reactor releases a refused connect's socket before reporting it; on_close must still
  // see the connection as its own (a load generator crashed reading a null state there).
  io::Address addr = io::parse_address("127.0.0.1:0");
  int fd = io::open_listener(addr, 1);
  addr.set_port(io::local_address(fd).port());
  ::close(fd);  // nothing listens there now: the connect is refused
  Server srv;
  auto [reactor, app, ep] = srv.parts();
  std::vector<std::uint16_t> codes;
  app.closed = [&](Connection c, std::uint16_t code) {
    EXPECT_TRUE(c.is_client());
    ASSERT_NE(ep.state(c), nullptr);
    EXPECT_EQ(ep.state(c)->tag, 0);
    codes.push_back(code);
    reactor.exit_when_idle();
  };
  Connection c = ep.connect(addr, "localhost", "/");
  ep.state(c)->tag = 0;
  reactor.run(ep);
  EXPECT_EQ(codes, std::vector<std::uint16_t>{1006});
  EXPECT_EQ(ep.state(c), nullptr);  // cleared after on_close
}

TEST(EngineApi, AConnectThatHangsEndsAtTheHandshakeDeadline) {
  // A listener that never accepts, its queue full: the kernel drops further SYNs, as a black
  // hole would. Before, a connect there waited for the kernel's SYN retries (minutes).
  io::Address addr = io::parse_address("127.0.0.1:0");
  int hole = io::open_listener(addr, 0);
  addr.set_port(io::local_address(hole).port());
  std::vector<int> fill;  // non-blocking: a blocking connect would itself hang here
  for (int i = 0; i < 4; ++i) {
    fill.push_back(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    ::connect(fill.back(), addr.sa(), addr.len);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ws::EndpointConfig cfg;
  cfg.handshake_timeout_ms = 200;
  Server srv(cfg);
  auto [reactor, app, ep] = srv.parts();
  std::vector<std::uint16_t> codes;
  app.closed = [&](Connection c, std::uint16_t code) {
    EXPECT_TRUE(c.is_client());
    codes.push_back(code);
    reactor.exit_when_idle();
  };
  auto t0 = std::chrono::steady_clock::now();
  ep.connect(addr, "localhost", "/");
  reactor.run(ep);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  EXPECT_EQ(codes, std::vector<std::uint16_t>{1006});
  EXPECT_LT(ms, 3000);
  for (int fd : fill) ::close(fd);
  ::close(hole);
}

// A blocking TLS client on a RawClient's socket, for one exchange on a thread of its own while
// the reactor runs: handshake, send `request`, read until done(bytes) or `ms`, then leave.
struct TlsRawClient {
  RawClient raw;
  tls::CtxPtr ctx{SSL_CTX_new(TLS_client_method()), SSL_CTX_free};
  explicit TlsRawClient(std::uint16_t port) : raw(port) {}
  std::string exchange(std::string_view request, int ms,
                       const std::function<bool(const std::string&)>& done = {}) const {
    std::string out;
    SSL* ssl = SSL_new(ctx.get());
    SSL_set_fd(ssl, raw.fd);
    timeval tv{5, 0};  // a handshake that never ends fails the test instead of hanging it
    setsockopt(raw.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (SSL_connect(ssl) == 1 &&
        SSL_write(ssl, request.data(), static_cast<int>(request.size())) > 0) {
      tv = {0, 50000};  // short reads from here on, so the deadline is checked
      setsockopt(raw.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
      char buf[65536];
      while (!(done && done(out)) && std::chrono::steady_clock::now() < deadline) {
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n > 0) {
          out.append(buf, static_cast<std::size_t>(n));
          continue;
        }
        int e = SSL_get_error(ssl, n);
        if (e != SSL_ERROR_WANT_READ && !(e == SSL_ERROR_SYSCALL && errno == EAGAIN)) break;
      }
    } else {
      ADD_FAILURE() << "TLS handshake or write failed";
    }
    SSL_free(ssl);
    ::shutdown(raw.fd, SHUT_RDWR);
    return out;
  }
};

// The complete server frames after the response head of `s`.
std::vector<ServerFrame> frames_after_head(const std::string& s) {
  std::vector<ServerFrame> out;
  std::string rest = after_head(s);
  std::string_view v(rest);
  for (ServerFrame f = parse_server_frame(v); f.size; f = parse_server_frame(v)) {
    v.remove_prefix(f.size);
    out.push_back(std::move(f));
  }
  return out;
}

TEST(EngineApi, APreparedFrameReachesManyWithoutACopyEach) {
  // One frame built once, queued to three plain and one TLS connection: plain queues hold the
  // same buffer (a view each, not a copy), TLS encrypts from it; all of it goes back to the pool.
  // Published three times, each after the last has been sent: once the pool has what the
  // first rounds took (the first had a queued 101 to append to), nothing is allocated for any
  // recipient.
  test::TempCert cert;
  Server srv;
  auto [reactor, app, ep] = srv.parts();
  auto [tls_port, plain_port] = srv.tls_and_plain(cert);
  std::vector<std::unique_ptr<RawClient>> plain;
  for (int i = 0; i < 3; ++i) plain.push_back(std::make_unique<RawClient>(plain_port));
  TlsRawClient secure(tls_port);
  std::string big(20000, 'p');  // over kLargePayload: TLS encrypts it where it lies
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  std::string small = "a small one";  // copied (plain) or staged with the turn's plaintext (TLS)
  auto six_frames = [](const std::string& got) { return frames_after_head(got).size() >= 6; };

  std::vector<std::uint32_t> refs_while_queued;
  std::vector<std::uint64_t> allocations;
  std::uint64_t in_use_after = 99;
  std::vector<ws::SendResult> results;
  auto publish = [&] {
    memory::BufferPool& pool = reactor.pool();
    std::uint64_t before = pool.allocations();
    memory::Buffer* b = ep.prepare_frame(Opcode::kBinary, std::as_bytes(std::span(big)));
    memory::Buffer* s = ep.prepare_frame(Opcode::kText, std::as_bytes(std::span(small)));
    ASSERT_NE(b, nullptr);
    ASSERT_NE(s, nullptr);
    ep.for_each_open([&](Connection c) {
      results.push_back(c.send_prepared(b));
      results.push_back(c.send_prepared(s));
    });
    refs_while_queued.push_back(b->refs);
    pool.release(b);
    pool.release(s);
    allocations.push_back(pool.allocations() - before);
  };
  int opened = 0, closed = 0;
  Later again, check;
  again.fn = [&] {
    publish();
    if (allocations.size() < 3) again.after(reactor, 100);
  };
  app.opened = [&](Connection) {
    if (++opened == 4) again.fn();
  };
  app.closed = [&](Connection, std::uint16_t) {
    if (++closed < 4) return;
    check.fn = [&] {
      in_use_after = reactor.pool().in_use();
      app.stop();
    };
    check.after(reactor, 20);
  };
  std::vector<std::string> got(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < 3; ++i) {
    plain[i]->send(kUpgrade);
    threads.push_back(plain[i]->read_then_leave(got[i], 5000, six_frames));
  }
  threads.emplace_back([&] { got[3] = secure.exchange(kUpgrade, 5000, six_frames); });
  reactor.run(ep);
  for (auto& t : threads) t.join();

  EXPECT_EQ(results, std::vector<ws::SendResult>(24, ws::SendResult::kOk));
  // The publisher's reference and three plain queues' views; TLS encrypted it at once.
  EXPECT_EQ(refs_while_queued, (std::vector<std::uint32_t>{4, 4, 4}));
  ASSERT_EQ(allocations.size(), 3u);
  EXPECT_EQ(allocations[2], 0u);
  for (const std::string& g : got) {
    std::vector<ServerFrame> f = frames_after_head(g);
    ASSERT_EQ(f.size(), 6u) << g.substr(0, 200);
    for (std::size_t i = 0; i < 6; i += 2) {
      EXPECT_EQ(f[i].opcode, 2);
      EXPECT_TRUE(f[i].payload == big);
      EXPECT_EQ(f[i + 1].opcode, 1);
      EXPECT_EQ(f[i + 1].payload, small);
    }
  }
  EXPECT_EQ(ep.counters().messages_out, 24u);
  EXPECT_EQ(in_use_after, 0u);
}

// What a peer with a 2^bits window inflates from a permessage-deflate payload (tail put back).
std::string inflate_as_peer(const std::string& z, int bits) {
  z_stream s{};
  EXPECT_EQ(inflateInit2(&s, -bits), Z_OK);
  std::string in = z + std::string("\x00\x00\xff\xff", 4);
  std::string out(1 << 20, '\0');
  s.next_in = reinterpret_cast<Bytef*>(in.data());
  s.avail_in = static_cast<uInt>(in.size());
  s.next_out = reinterpret_cast<Bytef*>(out.data());
  s.avail_out = static_cast<uInt>(out.size());
  int rc = inflate(&s, Z_SYNC_FLUSH);
  EXPECT_TRUE(rc == Z_OK || rc == Z_STREAM_END) << rc;
  out.resize(s.total_out);
  inflateEnd(&s);
  return out;
}

TEST(EngineApi, APreparedMessageIsCompressedOncePerWindowItsSubscribersNeed) {
  // Four subscribers: one without the extension, two with the default window (one frame for
  // both), one that asked for a 1 KiB window (a frame of its own). A message under
  // --deflate-min-size goes uncompressed to everyone; one no longer than 256 bytes needs one
  // compressed frame whatever the windows.
  ws::EndpointConfig cfg;
  cfg.deflate.mode = ws::DeflateMode::kNoContextTakeover;
  Server srv(cfg);
  auto [reactor, app, ep] = srv.parts();
  std::uint16_t port = listen_on(reactor);
  const std::string offers[] = {"", "permessage-deflate", "permessage-deflate",
                                "permessage-deflate; server_max_window_bits=10"};
  std::string big;
  for (int i = 0; big.size() < 20000; ++i)
    big += "{\"id\":" + std::to_string(i) + ",\"user\":\"name" + std::to_string(i % 13) + "\"},";
  std::string mid(200, 'm'), tiny = "tiny";
  std::vector<std::uint8_t> tried;
  std::vector<int> variants;
  int opened = 0;
  app.opened = [&](Connection) {
    if (++opened < 4) return;
    for (const std::string* text : {&big, &mid, &tiny}) {
      ws::PreparedMessage m = ep.prepare_message(Opcode::kText, std::as_bytes(std::span(*text)));
      ep.for_each_open([&](Connection c) { EXPECT_EQ(c.send_prepared(m), ws::SendResult::kOk); });
      tried.push_back(m.tried);
      variants.push_back(static_cast<int>(std::count_if(
          std::begin(m.deflated), std::end(m.deflated), [](memory::Buffer* b) { return b; })));
      ep.release_prepared(m);
    }
  };
  std::vector<std::unique_ptr<RawClient>> clients;
  std::vector<std::string> got(4);
  std::vector<std::thread> threads;
  auto three = [](const std::string& g) { return frames_after_head(g).size() >= 3; };
  for (std::size_t i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<RawClient>(port));
    std::string req(kUpgrade.substr(0, kUpgrade.size() - 2));
    if (!offers[i].empty()) req += "Sec-WebSocket-Extensions: " + offers[i] + "\r\n";
    clients[i]->send(req + "\r\n");
    threads.push_back(clients[i]->read_then_leave(got[i], 5000, three));
  }
  int closed = 0;
  app.closed = [&](Connection, std::uint16_t) {
    if (++closed == 4) app.stop();
  };
  reactor.run(ep);
  for (auto& t : threads) t.join();

  // Windows 15 and 10 for the big one; one frame for every window for the 200-byte one.
  EXPECT_EQ(tried, (std::vector<std::uint8_t>{0x80 | 0x04, 0x80, 0}));
  EXPECT_EQ(variants, (std::vector<int>{2, 1, 0}));
  for (std::size_t i = 0; i < 4; ++i) {
    std::vector<ServerFrame> f = frames_after_head(got[i]);
    ASSERT_EQ(f.size(), 3u) << i;
    int bits = i == 3 ? 10 : 15;
    for (std::size_t k = 0; k < 2; ++k) {
      const std::string& want = k == 0 ? big : mid;
      if (i == 0) {
        EXPECT_EQ(f[k].rsv, 0);
        EXPECT_EQ(f[k].payload, want);
      } else {
        EXPECT_EQ(f[k].rsv, 0x40) << i;
        EXPECT_LT(f[k].payload.size(), want.size() / 2) << i;
        EXPECT_EQ(inflate_as_peer(f[k].payload, bits), want) << i;
      }
    }
    EXPECT_EQ(f[2].rsv, 0);
    EXPECT_EQ(f[2].payload, tiny);
  }
  EXPECT_EQ(ep.counters().deflate_negotiated, 3u);
  EXPECT_EQ(ep.counters().messages_deflated, 6u);  // by delivery: two messages to three peers
  // Payload bytes out are the application's, as send() counts them, whatever variant went.
  EXPECT_EQ(ep.counters().payload_bytes_out, 4 * (big.size() + mid.size() + tiny.size()));
  EXPECT_EQ(reactor.pool().in_use(), 0u);
}

TEST(EngineApi, PreparedFramesThePeerMustRefuseAreNotMade) {
  Server srv;
  auto [reactor, app, ep] = srv.parts();
  std::string over(126, 'x');
  auto bytes = [](const std::string& s) { return std::as_bytes(std::span(s)); };
  EXPECT_EQ(ep.prepare_frame(Opcode::kPing, bytes(over)), nullptr);
  EXPECT_EQ(ep.prepare_frame(Opcode::kContinuation, bytes("x")), nullptr);
  EXPECT_EQ(ep.prepare_frame(static_cast<Opcode>(3), bytes("x")), nullptr);
  EXPECT_EQ(ep.prepare_frame(Opcode::kPong, bytes("x"), 0x40), nullptr);
  EXPECT_EQ(ep.prepare_frame(Opcode::kText, bytes("x"), 0x80), nullptr);
  memory::Buffer* ok = ep.prepare_frame(Opcode::kText, bytes("hi"), 0x40);
  ASSERT_NE(ok, nullptr);
  EXPECT_EQ(test::str({ok->data(), ok->len}), std::string("\xC1\x02hi"));
  EXPECT_EQ(Connection{}.send_prepared(ok), ws::SendResult::kClosed);
  reactor.pool().release(ok);
  EXPECT_EQ(reactor.pool().in_use(), 0u);
}

TEST(EngineApi, SendPreparedRefusesClientsAndBitsNotNegotiated) {
  Server srv;
  auto [reactor, app, ep] = srv.parts();
  io::Address addr = io::parse_address("127.0.0.1:0");
  addr.set_port(listen_on(reactor));
  std::vector<std::pair<bool, ws::SendResult>> plain, rsv1;
  Later later;
  app.opened = [&](Connection c) {
    memory::Buffer* f = ep.prepare_frame(Opcode::kText, std::as_bytes(std::span("x", 1)));
    memory::Buffer* z = ep.prepare_frame(Opcode::kText, std::as_bytes(std::span("x", 1)), 0x40);
    plain.push_back({c.is_client(), c.send_prepared(f)});
    rsv1.push_back({c.is_client(), c.send_prepared(z)});
    EXPECT_EQ(c.send_prepared(nullptr), ws::SendResult::kInvalid);
    reactor.pool().release(f);
    reactor.pool().release(z);
    // Not at once: frames after our own Close are dropped, and the server's "x" may still be
    // on its way.
    if (c.is_client()) {
      later.fn = [c] { c.close(); };
      later.after(reactor, 50);
    }
  };
  app.closed = [&](Connection c, std::uint16_t) {
    if (c.is_client()) app.stop();
  };
  ep.connect(addr, "localhost", "/");
  reactor.run(ep);
  // The server side opens first (it answers 101), then the client side.
  using P = std::pair<bool, ws::SendResult>;
  EXPECT_EQ(plain,
            (std::vector<P>{{false, ws::SendResult::kOk}, {true, ws::SendResult::kInvalid}}));
  EXPECT_EQ(rsv1,
            (std::vector<P>{{false, ws::SendResult::kInvalid}, {true, ws::SendResult::kInvalid}}));
  EXPECT_EQ(app.messages, std::vector<std::string>{"x"});  // the client got the server's one
}

// Counts loop turns through on_flush and answers each turn's messages with one frame.
struct TurnApp {
  io::Reactor* reactor = nullptr;
  int flushes = 0;
  std::vector<int> flush_seen;  // the flush count each message arrived at
  std::vector<int> batches;
  Connection pending;
  int waiting = 0;
  void on_open(Connection) {}
  void on_message(Connection c, Opcode, std::span<std::byte>) {
    flush_seen.push_back(flushes);
    pending = c;
    ++waiting;
  }
  void on_flush() {
    ++flushes;
    if (!waiting) return;
    batches.push_back(waiting);
    pending.send_text(std::to_string(waiting) + " in one turn");
    waiting = 0;
  }
  void on_close(Connection, std::uint16_t, std::string_view) {
    reactor->stop_listening();
    reactor->exit_when_idle();
  }
  void on_drain(Connection) {}
};

TEST(EngineApi, OnFlushEndsEachTurnAndWhatItSendsLeavesThen) {
  io::Reactor reactor(test::small_reactor(), 0);
  TurnApp app;
  app.reactor = &reactor;
  ws::Endpoint<TurnApp> ep(reactor, {}, app);
  RawClient client(listen_on(reactor));
  // The upgrade and three messages in one write: one receive, one turn.
  client.send(test::str(test::cat(
      {test::bytes(kUpgrade), test::frame(1, "a"), test::frame(1, "b"), test::frame(1, "c")})));
  std::string got;
  std::thread t = client.read_then_leave(
      got, 5000, [](const std::string& g) { return !frames_after_head(g).empty(); });
  reactor.run(ep);
  t.join();
  EXPECT_EQ(app.batches, std::vector<int>{3});
  ASSERT_EQ(app.flush_seen.size(), 3u);
  EXPECT_EQ(app.flush_seen[0], app.flush_seen[2]);  // no flush inside the turn
  EXPECT_GT(app.flushes, 1);                        // and one at every turn's end
  std::vector<ServerFrame> f = frames_after_head(got);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].payload, "3 in one turn");
}

TEST(EngineApi, StaticPagesOverPlainAndTls) {
  // The page is larger than one send and one TLS record; a browser's request says keep-alive.
  static const std::string page = [] {
    std::string p = "<!doctype html><script src=app.js></script>";
    while (p.size() < 300000) p += "<p>" + std::to_string(p.size()) + "</p>\n";
    return p;
  }();
  static const char kScript[] = "console.log('wsedge');";
  ws::EndpointConfig cfg;
  cfg.pages.push_back({"/", "text/html; charset=utf-8", page});
  cfg.pages.push_back({"/app.js", "text/javascript", kScript});
  test::TempCert cert;
  Server srv(cfg);
  auto [reactor, app, ep] = srv.parts();
  auto [tls_port, plain_port] = srv.tls_and_plain(cert);
  RawClient html(plain_port), health(plain_port), unknown(plain_port);
  TlsRawClient script(tls_port), tls_html(tls_port);
  auto get = [](std::string_view target) {
    return "GET " + std::string(target) +
           " HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n";
  };
  html.send(get("/?from=test"));
  health.send(get("/healthz"));
  unknown.send(get("/missing"));
  std::string html_got, health_got, unknown_got, script_got, tls_html_got;
  std::thread t([&] {
    html_got = html.read(5000);
    health_got = health.read(5000);
    unknown_got = unknown.read(5000);
    for (const RawClient* c : {&html, &health, &unknown}) ::shutdown(c->fd, SHUT_RDWR);
    script_got = script.exchange(get("/app.js"), 5000);
    tls_html_got = tls_html.exchange(get("/"), 5000);
    reactor.request_stop();
  });
  reactor.run(ep);
  t.join();
  auto head_of = [](const std::string& r) { return r.substr(0, r.find("\r\n\r\n") + 4); };
  std::string h = head_of(html_got);
  EXPECT_EQ(h.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << h;
  EXPECT_NE(h.find("Content-Type: text/html; charset=utf-8\r\n"), std::string::npos);
  EXPECT_NE(h.find("Content-Length: " + std::to_string(page.size()) + "\r\n"), std::string::npos);
  EXPECT_NE(h.find("Cache-Control: no-cache\r\n"), std::string::npos);
  EXPECT_NE(h.find("X-Content-Type-Options: nosniff\r\n"), std::string::npos);
  EXPECT_NE(h.find("Connection: close\r\n"), std::string::npos);
  EXPECT_TRUE(after_head(html_got) == page);  // all of it, and the FIN after it (read to EOF)
  EXPECT_EQ(after_head(tls_html_got).size(), page.size());
  EXPECT_TRUE(after_head(tls_html_got) == page);
  EXPECT_EQ(head_of(script_got).rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << script_got;
  EXPECT_NE(script_got.find("Content-Type: text/javascript\r\n"), std::string::npos);
  EXPECT_EQ(after_head(script_got), kScript);
  EXPECT_EQ(health_got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << health_got;
  EXPECT_EQ(unknown_got.rfind("HTTP/1.1 426 ", 0), 0u) << unknown_got;
  EXPECT_EQ(ep.counters().pages_served, 3u);
  EXPECT_EQ(ep.counters().health_checks, 1u);
  EXPECT_EQ(ep.counters().handshake_rejected, 1u);
  EXPECT_EQ(ep.counters().tls_errors, 0u);
}

TEST(EngineApi, ForEachOpenVisitsOpenConnectionsOnly) {
  ws::EndpointConfig cfg;
  cfg.handshake_timeout_ms = 300;  // how long the silent client keeps the test
  Server srv(cfg);
  auto [reactor, app, ep] = srv.parts();
  io::Address addr = io::parse_address("127.0.0.1:0");
  addr.set_port(listen_on(reactor));
  RawClient handshaking(addr.port());  // never sends its upgrade: not open, not visited
  int opened = 0;
  std::vector<bool> seen_clients;
  app.opened = [&](Connection) {
    if (++opened < 4) return;  // two client connections and their two server sides
    ep.for_each_open([&](Connection c) {
      seen_clients.push_back(c.is_client());
      if (c.is_client()) c.close();  // closing while iterating is allowed
    });
    int after = 0;
    ep.for_each_open([&](Connection) { ++after; });
    EXPECT_EQ(after, 2);  // the closing client sides are no longer open
  };
  int closed = 0;
  app.closed = [&](Connection, std::uint16_t) {
    if (++closed == 4) app.stop();
  };
  ep.connect(addr, "localhost", "/");
  ep.connect(addr, "localhost", "/");
  reactor.run(ep);
  ASSERT_EQ(seen_clients.size(), 4u);
  EXPECT_EQ(std::count(seen_clients.begin(), seen_clients.end(), true), 2);
}

}  // namespace
}  // namespace wsedge

// permessage-deflate from a raw peer's side: what the server accepts, refuses and counts
// (docs/DEFLATE.md §4), and what an application may do with an inflated message.
namespace wsedge {
namespace {

// What a zlib peer sends for a message given in `blocks`: raw deflate, one sync flush after
// each block (so a character may be split across blocks), the last flush's tail removed
// (RFC 7692 §7.2.1).
std::string deflate_as_peer(std::initializer_list<std::string_view> blocks) {
  z_stream s{};
  EXPECT_EQ(deflateInit2(&s, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out;
  for (std::string_view b : blocks) {
    std::string piece(deflateBound(&s, b.size()) + 16, '\0');
    s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(b.data()));
    s.avail_in = static_cast<uInt>(b.size());
    s.next_out = reinterpret_cast<Bytef*>(piece.data());
    s.avail_out = static_cast<uInt>(piece.size());
    EXPECT_EQ(::deflate(&s, Z_SYNC_FLUSH), Z_OK);
    piece.resize(piece.size() - s.avail_out);
    out += piece;
  }
  deflateEnd(&s);
  EXPECT_EQ(out.substr(out.size() - 4), std::string("\x00\x00\xff\xff", 4));
  out.resize(out.size() - 4);
  return out;
}

ws::EndpointConfig deflate_server(std::uint64_t max_message = std::uint64_t{16} << 20) {
  ws::EndpointConfig cfg;
  cfg.deflate.mode = ws::DeflateMode::kNoContextTakeover;
  cfg.max_message = max_message;
  return cfg;
}

constexpr int kRsv1 = 0x40;
const test::Bytes kClientClose = test::frame(8, "\x03\xe8");

// One raw client that offers `offer` (none when empty) and sends `frames`, against a fresh
// server; it reads until the server's Close.
struct DeflatePeer {
  std::string got;
  std::vector<ServerFrame> frames;  // after the 101
  std::vector<std::string> messages;
  ws::EndpointCounters counters;
  std::size_t pool_in_use = 0;
  std::uint16_t close_code() const {
    return !frames.empty() && frames.back().opcode == 8 ? close_code_of(frames.back()) : 0;
  }
};
DeflatePeer deflate_peer(std::string_view offer, std::initializer_list<test::Bytes> frames,
                         const ws::EndpointConfig& cfg = deflate_server(),
                         std::function<void(Recorder&, ws::Endpoint<Recorder>&)> setup = {}) {
  Server srv(cfg);
  auto [reactor, app, ep] = srv.parts();
  if (setup) setup(app, ep);
  RawClient client(listen_on(reactor));
  std::string req(kUpgrade.substr(0, kUpgrade.size() - 2));
  if (!offer.empty()) req.append("Sec-WebSocket-Extensions: ").append(offer).append("\r\n");
  client.send(req.append("\r\n"));
  for (const test::Bytes& f : frames) client.send(f);
  DeflatePeer r;
  auto closed = [](const std::string& g) {
    for (const ServerFrame& f : frames_after_head(g))
      if (f.opcode == 8) return true;
    return false;
  };
  std::thread t = client.read_then_leave(r.got, 5000, closed);
  app.closed = [&](Connection, std::uint16_t) { app.stop(); };
  reactor.run(ep);
  t.join();
  r.frames = frames_after_head(r.got);
  r.messages = app.messages;
  r.counters = ep.counters();
  r.pool_in_use = reactor.pool().in_use();
  return r;
}

TEST(EngineApi, DeflateRsv1BelongsOnTheFirstFrameOfANegotiatedDataMessageOnly) {
  const std::string z = deflate_as_peer({"first half, ", "second half"});
  struct Case {
    const char* what;
    std::string_view offer;
    test::Bytes frames;
  };
  const Case cases[] = {
      {"on a continuation", "permessage-deflate",
       test::cat({test::frame(1, z.substr(0, 5), false, true, kRsv1),
                  test::frame(0, z.substr(5), true, true, kRsv1)})},
      {"on a ping", "permessage-deflate", test::frame(9, "p", true, true, kRsv1)},
      {"on a ping inside a compressed message", "permessage-deflate",
       test::cat({test::frame(1, z.substr(0, 5), false, true, kRsv1),
                  test::frame(9, "p", true, true, kRsv1), test::frame(0, z.substr(5))})},
      {"on a close", "permessage-deflate", test::frame(8, "\x03\xe8", true, true, kRsv1)},
      {"without an offer", "", test::frame(1, z, true, true, kRsv1)},
      {"RSV2 with the extension", "permessage-deflate", test::frame(1, z, true, true, 0x20)},
      {"RSV1|RSV3 with the extension", "permessage-deflate",
       test::frame(1, z, true, true, kRsv1 | 0x10)},
  };
  for (const Case& c : cases) {
    DeflatePeer p = deflate_peer(c.offer, {c.frames});
    EXPECT_EQ(p.close_code(), 1002) << c.what;
    EXPECT_TRUE(p.messages.empty()) << c.what;
    EXPECT_EQ(p.counters.protocol_errors, 1u) << c.what;
    EXPECT_EQ(p.counters.inflate_errors, 0u) << c.what;  // the reader's refusal, not zlib's
    EXPECT_EQ(p.pool_in_use, 0u) << c.what;
  }
}

TEST(EngineApi, DeflateFragmentsWithControlFramesBetweenAreInflatedAsOneMessage) {
  std::string text;
  for (int i = 0; text.size() < 20000; ++i) text += "{\"n\":" + std::to_string(i) + "},";
  const std::string z = deflate_as_peer(
      {std::string_view(text).substr(0, 7000), std::string_view(text).substr(7000)});
  const std::size_t a = z.size() / 3, b = 2 * z.size() / 3;
  DeflatePeer p =
      deflate_peer("permessage-deflate",
                   {test::frame(1, z.substr(0, a), false, true, kRsv1), test::frame(9, "ping"),
                    test::frame(0, z.substr(a, b - a), false), test::frame(10, "unsolicited pong"),
                    test::frame(0, z.substr(b)), kClientClose});
  ASSERT_EQ(p.messages, std::vector<std::string>{text});
  ASSERT_EQ(p.frames.size(), 3u);
  EXPECT_EQ(p.frames[0].opcode, 10);
  EXPECT_EQ(p.frames[0].payload, "ping");
  EXPECT_EQ(p.frames[1].opcode, 1);  // the echo, compressed as a whole
  EXPECT_EQ(p.frames[1].rsv, kRsv1);
  EXPECT_EQ(inflate_as_peer(p.frames[1].payload, 15), text);
  EXPECT_EQ(p.close_code(), 1000);
  EXPECT_EQ(p.counters.messages_inflated, 1u);
  EXPECT_EQ(p.counters.inflate_in_bytes, z.size());
  EXPECT_EQ(p.counters.inflate_out_bytes, text.size());
  EXPECT_EQ(p.counters.payload_bytes_in, text.size());
  EXPECT_EQ(p.counters.messages_deflated, 1u);
  EXPECT_EQ(p.counters.deflate_in_bytes, text.size());
  EXPECT_EQ(p.counters.deflate_out_bytes, p.frames[1].payload.size());
  EXPECT_EQ(p.pool_in_use, 0u);
}

TEST(EngineApi, DeflateMaxMessageIsTheInflatedSizeExactlyAtAndOneOver) {
  const std::uint64_t kMax = 1000;
  const std::string at(kMax, 'x'), over(kMax + 1, 'x');
  struct Case {
    const char* what;
    test::Bytes frame;
    bool delivered;
    std::uint64_t too_big, inflate_too_big;
  };
  const Case cases[] = {
      {"compressed, inflated to the limit",
       test::frame(1, deflate_as_peer({at}), true, true, kRsv1), true, 0, 0},
      {"compressed, one over", test::frame(1, deflate_as_peer({over}), true, true, kRsv1), false, 1,
       1},
      {"uncompressed at the limit", test::frame(1, at), true, 0, 0},
      // Within the reader's allowance for deflate's overhead, but not compressed.
      {"uncompressed, one over", test::frame(1, over), false, 1, 0},
      {"uncompressed, 64 over", test::frame(1, std::string(kMax + 64, 'x')), false, 1, 0},
  };
  for (const Case& c : cases) {
    DeflatePeer p =
        deflate_peer("permessage-deflate", {c.frame, kClientClose}, deflate_server(kMax),
                     [](Recorder& app, ws::Endpoint<Recorder>&) { app.echo = false; });
    EXPECT_EQ(p.messages.size(), c.delivered ? 1u : 0u) << c.what;
    EXPECT_EQ(p.close_code(), c.delivered ? 1000 : 1009) << c.what;
    EXPECT_EQ(p.counters.too_big, c.too_big) << c.what;
    EXPECT_EQ(p.counters.inflate_too_big, c.inflate_too_big) << c.what;
    EXPECT_EQ(p.counters.protocol_errors, 0u) << c.what;
    EXPECT_EQ(p.pool_in_use, 0u) << c.what;
  }
}

TEST(EngineApi, DeflateBadDataClosesOnceWithItsCode) {
  const std::string z = deflate_as_peer({"a message long enough to be cut inside its block"});
  const std::string euro = "price: \xe2\x82\xac 5";  // U+20AC, 3 bytes
  struct Case {
    const char* what;
    test::Bytes frame;
    std::uint16_t code;  // 1000: delivered
    std::string delivered;
    std::uint64_t inflate_errors = 0;
  };
  const Case cases[] = {
      {"not deflate data", test::frame(2, "\xff\xff\xff\xff", true, true, kRsv1), 1002, "", 1},
      {"cut inside its block", test::frame(1, z.substr(0, z.size() / 2), true, true, kRsv1), 1002,
       "", 1},
      {"bytes after a final block",
       test::frame(1, std::string("\x03\x00", 2) + "junk", true, true, kRsv1), 1002, "", 1},
      // RFC 7692 §7.2.3.6: an empty message is sent compressed as one 0x00 octet. An empty
      // payload with RSV1 is 00 00 ff ff alone: a stored block cut short.
      {"empty payload", test::frame(1, "", true, true, kRsv1), 1002, "", 1},
      {"the empty block", test::frame(1, std::string(1, '\0'), true, true, kRsv1), 1000, ""},
      {"a final empty block", test::frame(2, std::string("\x03\x00", 2), true, true, kRsv1), 1000,
       ""},
      {"invalid UTF-8 once inflated",
       test::frame(1, deflate_as_peer({"ok \xc3\x28 not"}), true, true, kRsv1), 1007, ""},
      {"a character split across blocks",
       test::frame(
           1,
           deflate_as_peer({std::string_view(euro).substr(0, 8), std::string_view(euro).substr(8)}),
           true, true, kRsv1),
       1000, euro},
      // The reader leaves compressed text's UTF-8 to the inflater; uncompressed text on the
      // same connection is still the reader's.
      {"uncompressed invalid UTF-8", test::frame(1, "bad \xc3\x28"), 1007, ""},
  };
  for (const Case& c : cases) {
    DeflatePeer p = deflate_peer("permessage-deflate", {c.frame, kClientClose}, deflate_server(),
                                 [](Recorder& app, ws::Endpoint<Recorder>&) { app.echo = false; });
    EXPECT_EQ(p.close_code(), c.code) << c.what;
    if (c.code == 1000)
      EXPECT_EQ(p.messages, std::vector<std::string>{c.delivered}) << c.what;
    else
      EXPECT_TRUE(p.messages.empty()) << c.what;
    EXPECT_EQ(p.counters.inflate_errors, c.inflate_errors) << c.what;
    EXPECT_EQ(p.counters.protocol_errors, c.code == 1002 ? 1u : 0u) << c.what;
    EXPECT_EQ(p.counters.invalid_utf8, c.code == 1007 ? 1u : 0u) << c.what;
    EXPECT_EQ(p.counters.too_big, 0u) << c.what;
    EXPECT_EQ(p.pool_in_use, 0u) << c.what;
  }
}

TEST(EngineApi, DeflateAnInflatedMessageOutlivesWhatOnMessageDoesWithIt) {
  // Large enough for write_frame's no-copy paths, and noise, so that the echo does not
  // compress: it is sent from the inflated buffer itself. on_message echoes it twice, closes
  // the connection, and sends once more (refused: closing).
  std::string noise(40000, '\0');
  for (std::uint64_t i = 0, x = 88172645463325252ull; i < noise.size(); ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    noise[i] = static_cast<char>(x >> 32);
  }
  const std::string z = deflate_as_peer({noise});
  std::vector<ws::SendResult> results;
  DeflatePeer p =
      deflate_peer("permessage-deflate", {test::frame(2, z, true, true, kRsv1)}, deflate_server(),
                   [&](Recorder& app, ws::Endpoint<Recorder>&) {
                     app.message = [&](Connection c, Opcode op, std::span<std::byte> m) {
                       results.push_back(c.send(op, m));
                       results.push_back(c.send(op, m));
                       c.close(4000, "enough");
                       results.push_back(c.send(op, m));
                     };
                   });
  EXPECT_EQ(results, (std::vector<ws::SendResult>{ws::SendResult::kOk, ws::SendResult::kOk,
                                                  ws::SendResult::kClosed}));
  ASSERT_EQ(p.frames.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(p.frames[i].rsv, 0) << i;
    EXPECT_TRUE(p.frames[i].payload == noise) << i;
  }
  EXPECT_EQ(p.close_code(), 4000);
  EXPECT_EQ(p.pool_in_use, 0u);
}

TEST(EngineApi, DeflateAnUpgradeDecidedInsideAnotherConnectionsMessage) {
  // B's upgrade waits; its compressed messages wait behind it in the handshake buffer. A's
  // compressed message decides it from on_message: B's messages are inflated and delivered
  // (nested, through the same core inflater) while A's inflated message is still being
  // handled; then A echoes its own, which must be intact.
  Server srv(deflate_server());
  auto [reactor, app, ep] = srv.parts();
  std::uint16_t port = listen_on(reactor);
  std::string text_a, text_b;
  for (int i = 0; text_a.size() < 30000; ++i) text_a += "a:" + std::to_string(i) + ";";
  for (int i = 0; text_b.size() < 30000; ++i) text_b += "b=" + std::to_string(i * 3) + "|";
  std::string req(kUpgrade.substr(0, kUpgrade.size() - 2));
  req.append("Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n");
  ws::Connection pending_b;
  int upgrades = 0;
  app.upgrade = [&](Connection c) {
    if (++upgrades == 1) return ws::UpgradeDecision{};  // A
    pending_b = c;
    return ws::UpgradeDecision::pending();
  };
  app.message = [&](Connection c, Opcode op, std::span<std::byte> m) {
    if (pending_b.current() && !pending_b.open()) pending_b.decide({});
    c.send(op, m);
  };
  int closed = 0;
  app.closed = [&](Connection, std::uint16_t) {
    if (++closed == 2) app.stop();
  };
  RawClient a(port);
  a.send(req);
  std::string got_a, got_b;
  auto echoed = [](const std::string& g) { return frames_after_head(g).size() >= 1; };
  std::thread ta = a.read_then_leave(got_a, 5000, echoed);
  Later b_connects;
  std::unique_ptr<RawClient> b;
  std::thread tb;
  b_connects.fn = [&] {
    b = std::make_unique<RawClient>(port);
    b->send(req);
    b->send(test::frame(1, deflate_as_peer({text_b}), true, true, kRsv1));
    Later* send_a = new Later;
    send_a->fn = [&, send_a] {
      a.send(test::frame(1, deflate_as_peer({text_a}), true, true, kRsv1));
      delete send_a;
    };
    send_a->after(reactor, 50);
    tb = b->read_then_leave(got_b, 5000, echoed);
  };
  b_connects.after(reactor, 20);
  reactor.run(ep);
  ta.join();
  tb.join();
  std::vector<ServerFrame> fa = frames_after_head(got_a), fb = frames_after_head(got_b);
  ASSERT_GE(fa.size(), 1u);
  ASSERT_GE(fb.size(), 1u);
  EXPECT_TRUE(inflate_as_peer(fa[0].payload, 15) == text_a);
  EXPECT_TRUE(inflate_as_peer(fb[0].payload, 15) == text_b);
  EXPECT_EQ(app.messages, (std::vector<std::string>{text_a, text_b}));
  EXPECT_EQ(ep.counters().deflate_negotiated, 2u);
  EXPECT_EQ(reactor.pool().in_use(), 0u);
}

// A server for the engine's client role, byte-exact: it answers the upgrade with `extensions`,
// sends `frames` (unmasked), and reads what the client sends until it closes.
struct RawServer {
  int lfd = -1;
  std::uint16_t port = 0;
  std::string got;
  std::thread t;
  RawServer(std::string extensions, std::string frames) {
    lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(lfd, 4);
    socklen_t len = sizeof a;
    getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    t = std::thread([this, extensions, frames] {
      int fd = ::accept(lfd, nullptr, nullptr);
      if (fd < 0) return;
      std::string req;
      char buf[4096];
      while (req.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<std::size_t>(n));
      }
      std::string_view field = "Sec-WebSocket-Key: ";
      std::size_t k = req.find(field);
      std::string key = req.substr(k + field.size(), 24);
      protocol::AcceptKey accept = protocol::accept_key(key);
      std::string resp =
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Accept: " +
          std::string(accept.data(), accept.size()) + "\r\n";
      if (!extensions.empty()) resp += "Sec-WebSocket-Extensions: " + extensions + "\r\n";
      resp += "\r\n" + frames;
      ::send(fd, resp.data(), resp.size(), MSG_NOSIGNAL);
      timeval tv{5, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      while (!closed()) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        got.append(buf, static_cast<std::size_t>(n));
      }
      ::close(fd);  // the client's Close read: the TCP close answers it
    });
  }
  // Whether the client's frames so far include its Close.
  bool closed() const {
    std::string_view v(got);
    protocol::FrameHeader h;
    while (protocol::parse_frame_header(reinterpret_cast<const std::byte*>(v.data()), v.size(),
                                        h) == protocol::HeaderParse::kOk &&
           v.size() >= h.size + h.payload_len) {
      if (h.opcode == 8) return true;
      v.remove_prefix(h.size + h.payload_len);
    }
    return false;
  }
  ~RawServer() {
    if (t.joinable()) t.join();
    ::close(lfd);
  }
};

// A server frame as a raw server sends it (unmasked).
std::string server_frame(int opcode, std::string_view payload, int rsv = 0) {
  return test::str(test::frame(opcode, payload, true, false, rsv));
}

struct ClientRun {
  std::vector<std::string> messages;
  std::vector<std::uint16_t> codes;
  ws::EndpointCounters counters;
  std::string server_got;
};
// The engine's client, offering deflate in `mode`, against a RawServer; it closes once it got
// a message.
ClientRun client_against(ws::DeflateMode mode, std::string extensions, std::string frames,
                         std::string_view send = {}) {
  RawServer server(std::move(extensions), std::move(frames));
  ws::EndpointConfig cfg;
  cfg.deflate.mode = mode;
  Server srv(cfg);
  auto [reactor, app, ep] = srv.parts();
  app.opened = [&](Connection c) {
    if (!send.empty()) c.send_text(send);
  };
  app.message = [&](Connection c, Opcode, std::span<std::byte>) { c.close(1000, "got it"); };
  app.closed = [&](Connection, std::uint16_t) { app.stop(); };
  io::Address addr = io::parse_address("127.0.0.1:0");
  addr.set_port(server.port);
  ep.connect(addr, "localhost", "/");
  reactor.run(ep);
  ClientRun r{app.messages, app.close_codes, ep.counters(), {}};
  EXPECT_EQ(reactor.pool().in_use(), 0u);
  server.t.join();
  r.server_got = server.got;
  return r;
}

TEST(EngineApi, DeflateTheClientRoleSurvivesWhatAServerAnswersAndSends) {
  std::string text;
  for (int i = 0; text.size() < 3000; ++i) text += "{\"k\":" + std::to_string(i) + "},";
  const std::string z = deflate_as_peer({text});
  // A valid answer, then a compressed message: inflated.
  ClientRun ok =
      client_against(ws::DeflateMode::kNoContextTakeover,
                     "permessage-deflate; server_no_context_takeover", server_frame(1, z, kRsv1));
  EXPECT_EQ(ok.messages, std::vector<std::string>{text});
  EXPECT_EQ(ok.counters.deflate_negotiated, 1u);
  EXPECT_EQ(ok.counters.messages_inflated, 1u);
  // RSV1 from a server that answered no extension: 1002, no crash, nothing delivered.
  ClientRun none =
      client_against(ws::DeflateMode::kNoContextTakeover, "", server_frame(1, z, kRsv1));
  EXPECT_TRUE(none.messages.empty());
  EXPECT_EQ(none.codes, std::vector<std::uint16_t>{1002});
  EXPECT_EQ(none.counters.protocol_errors, 1u);
  EXPECT_EQ(none.counters.deflate_negotiated, 0u);
  // An answer our offer forbids: the connection fails before it opens.
  ClientRun bad = client_against(ws::DeflateMode::kNoContextTakeover, "permessage-deflate",
                                 server_frame(1, "hi"));
  EXPECT_TRUE(bad.messages.empty());
  EXPECT_EQ(bad.counters.handshake_rejected, 1u);
  // A window of 8 bits for our messages with context takeover: zlib has no raw 256-byte
  // window (deflateInit2 refuses it), so the client compresses each message on its own,
  // within 256 bytes, instead of creating a stream that cannot exist.
  std::string small(200, 's');
  ClientRun eight = client_against(ws::DeflateMode::kContextTakeover,
                                   "permessage-deflate; client_max_window_bits=8",
                                   server_frame(1, z, kRsv1), small);
  EXPECT_EQ(eight.messages, std::vector<std::string>{text});
  EXPECT_EQ(eight.counters.deflate_negotiated, 1u);
  EXPECT_EQ(eight.counters.messages_deflated, 1u);
}

TEST(EngineApi, DeflateAnUpgradeRefusedAfterNegotiationCountsNothingAndHoldsNothing) {
  // The application's extra headers leave no room for the 101: it becomes a 500 after the
  // offer was negotiated (context streams made, with context takeover).
  const std::string headers = "X-Big: " + std::string(2300, 'h') + "\r\n";
  for (ws::DeflateMode mode :
       {ws::DeflateMode::kNoContextTakeover, ws::DeflateMode::kContextTakeover}) {
    ws::EndpointConfig cfg = deflate_server();
    cfg.deflate.mode = mode;
    DeflatePeer p =
        deflate_peer("permessage-deflate", {}, cfg, [&](Recorder& app, ws::Endpoint<Recorder>&) {
          app.upgrade = [&](Connection) {
            app.stop();  // once the refused connection is gone
            return ws::UpgradeDecision{.headers = headers};
          };
        });
    EXPECT_EQ(p.got.rfind("HTTP/1.1 500", 0), 0u) << p.got.substr(0, 40);
    EXPECT_EQ(p.counters.handshakes, 0u);
    EXPECT_EQ(p.counters.deflate_negotiated, 0u);
    EXPECT_EQ(p.counters.deflate_context_bytes, 0u);
    EXPECT_EQ(p.pool_in_use, 0u);
  }
}

}  // namespace
}  // namespace wsedge
