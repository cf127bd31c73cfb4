#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "app/ops_sources.hpp"
#include "auth/gate.hpp"
#include "engine/server.hpp"
#include "ops/admin_server.hpp"
#include "ops/metrics_registry.hpp"

namespace wsedge::ops {
namespace {

// Every "# TYPE name" line, checking none repeats.
std::set<std::string> families(const std::string& text) {
  std::set<std::string> names;
  for (std::size_t p = text.find("# TYPE "); p != std::string::npos;
       p = text.find("# TYPE ", p + 1)) {
    std::size_t end = text.find(' ', p + 7);
    std::string name = text.substr(p + 7, end - p - 7);
    EXPECT_TRUE(names.insert(name).second) << "family twice: " << name;
    EXPECT_TRUE(name.starts_with("wsedge_")) << name;
  }
  return names;
}

TEST(MetricsRegistry, CoresCountedUpAndDownAndScrapedWithTheirLabel) {
  Health h{2, false};
  MetricsRegistry reg(h);
  io::ReactorCounters r0, r1;
  ws::EndpointCounters e0, e1;
  EXPECT_EQ(reg.not_ready(), "0 of 2 cores up");
  reg.add(0, {&r0, &e0});
  EXPECT_EQ(h.cores_up.load(), 1u);
  reg.add(0, {&r0, &e0});  // again: not a second core
  EXPECT_EQ(h.cores_up.load(), 1u);
  reg.add(1, {&r1, &e1});
  EXPECT_EQ(reg.not_ready(), "");
  ++r1.accepted;
  r0.connections.set(3);
  std::string text = reg.scrape();
  EXPECT_NE(text.find("wsedge_accepted_total{core=\"1\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("wsedge_connections{core=\"0\"} 3\n"), std::string::npos);
  reg.remove(1);
  reg.remove(1);
  EXPECT_EQ(h.cores_up.load(), 1u);
  EXPECT_EQ(reg.scrape().find("core=\"1\""), std::string::npos);
  h.set_draining();
  EXPECT_EQ(reg.not_ready(), "draining");
}

TEST(MetricsRegistry, EveryEngineFamilyOnceAndNamedByTheTables) {
  Health h{2, false};
  MetricsRegistry reg(h);
  io::ReactorCounters r[2];
  ws::EndpointCounters e[2];
  for (unsigned i = 0; i < 2; ++i) reg.add(i, {&r[i], &e[i]});
  std::set<std::string> names = families(reg.scrape());
  for (const auto& m : io::kReactorMetrics) EXPECT_TRUE(names.count(metric_name(m.name))) << m.name;
  for (const auto& m : ws::kEndpointMetrics)
    EXPECT_TRUE(names.count(metric_name(m.name))) << m.name;
  for (const char* n : {"wsedge_closes_total", "wsedge_upgrades_refused_total",
                        "wsedge_handshake_duration_seconds"})
    EXPECT_TRUE(names.count(n)) << n;
}

TEST(MetricsRegistry, ClosesByCodeAndSide) {
  ws::EndpointCounters e;
  ++e.closes.by[ws::CloseCounters::kPeer][ws::CloseCounters::slot(1000)];
  ++e.closes.by[ws::CloseCounters::kServer][ws::CloseCounters::slot(4401)];
  ++e.closes.by[ws::CloseCounters::kServer][ws::CloseCounters::slot(3000)];
  io::ReactorCounters r;
  Exposition out;
  collect_engine(out, {"core", "0"}, r, e);
  std::string text = out.text();
  EXPECT_NE(text.find("wsedge_closes_total{core=\"0\",code=\"1000\",side=\"client\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("wsedge_closes_total{core=\"0\",code=\"4xxx\",side=\"server\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("wsedge_closes_total{core=\"0\",code=\"other\",side=\"server\"} 1\n"),
            std::string::npos);
  EXPECT_EQ(ws::CloseCounters::slot(1015), 15u);
  EXPECT_EQ(ws::CloseCounters::slot(999), 17u);
  EXPECT_EQ(ws::CloseCounters::slot(5000), 17u);
}

TEST(MetricsRegistry, HandshakeHistogramInSeconds) {
  ws::EndpointCounters e;
  e.handshake_time.record(100);         // first bucket (<= 250 us)
  e.handshake_time.record(250);         // still the first: le is "less or equal"
  e.handshake_time.record(3000);        // <= 5 ms
  e.handshake_time.record(20'000'000);  // above every bound
  io::ReactorCounters r;
  Exposition out;
  collect_engine(out, {"core", "0"}, r, e);
  std::string text = out.text();
  EXPECT_NE(text.find("wsedge_handshake_duration_seconds_bucket{core=\"0\",le=\"0.00025\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("wsedge_handshake_duration_seconds_bucket{core=\"0\",le=\"0.005\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("wsedge_handshake_duration_seconds_bucket{core=\"0\",le=\"10\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("wsedge_handshake_duration_seconds_bucket{core=\"0\",le=\"+Inf\"} 4\n"),
            std::string::npos);
  EXPECT_NE(text.find("wsedge_handshake_duration_seconds_count{core=\"0\"} 4\n"),
            std::string::npos);
  EXPECT_NE(text.find("wsedge_handshake_duration_seconds_sum{core=\"0\"} 20.00335\n"),
            std::string::npos);
}

TEST(MetricsRegistry, AuthFamiliesJoinTheEnginesRefusals) {
  Health h{1, false};
  MetricsRegistry reg(h);
  io::ReactorCounters r;
  ws::EndpointCounters e;
  auth::AuthCounters a;
  ++a.refused[static_cast<std::size_t>(auth::TokenError::kExpired)];
  ++a.refused[static_cast<std::size_t>(auth::TokenError::kBadSignature)];
  ++a.denied_subscribe;
  ++e.origin_refused;
  CoreSources s{&r, &e};
  s.apps[0] = {&a, app::collect_auth};
  reg.add(0, s);
  std::string text = reg.scrape();
  families(text);
  EXPECT_NE(text.find("wsedge_upgrades_refused_total{core=\"0\",reason=\"auth\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("wsedge_upgrades_refused_total{core=\"0\",reason=\"origin\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("wsedge_acl_denials_total{core=\"0\",permission=\"subscribe\"} 1\n"),
            std::string::npos);
  // The exit log's flat names stay.
  EXPECT_NE(text.find("wsedge_acl_denied_subscribe_total{core=\"0\"} 1\n"), std::string::npos);
}

TEST(MetricsRegistry, ReadinessWaitsForBackendsWhenAsked) {
  Health h{1, true};
  MetricsRegistry reg(h);
  io::ReactorCounters r;
  ws::EndpointCounters e;
  Counter routes_down;
  routes_down.set(1);
  CoreSources s{&r, &e};
  s.routes_down = &routes_down;
  reg.add(0, s);
  EXPECT_EQ(reg.not_ready(), "core 0: 1 route(s) without a backend up");
  routes_down.set(0);
  EXPECT_EQ(reg.not_ready(), "");
}

TEST(AdminAnswer, Endpoints) {
  Health h{1, false};
  MetricsRegistry reg(h);
  auto get = [&](std::string_view head) { return answer_admin(head, reg); };
  EXPECT_EQ(get("GET /healthz HTTP/1.1\r\n\r\n").body, "ok\n");
  AdminResponse not_ready = get("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(not_ready.status, 503);
  EXPECT_EQ(not_ready.body, "0 of 1 cores up\n");
  io::ReactorCounters r;
  ws::EndpointCounters e;
  reg.add(0, {&r, &e});
  EXPECT_EQ(get("GET /readyz HTTP/1.1\r\n\r\n").status, 200);
  AdminResponse m = get("GET /metrics?name[]=x HTTP/1.1\r\n\r\n");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(get("GET /other HTTP/1.1\r\n\r\n").status, 404);
  EXPECT_EQ(get("POST /metrics HTTP/1.1\r\n\r\n").status, 405);
  for (std::string_view bad :
       {"GET\r\n\r\n", "GET /metrics\r\n\r\n", "GET  HTTP/1.1\r\n\r\n",
        "GET metrics HTTP/1.1\r\n\r\n", "GET /metrics HTTP/2.0\r\n\r\n", "\r\n\r\n", ""})
    EXPECT_EQ(get(bad).status, 400) << bad;
  // HEAD: the length a GET would get, no body.
  AdminResponse head = get("HEAD /healthz HTTP/1.1\r\n\r\n");
  std::string out = render(head);
  EXPECT_NE(out.find("Content-Length: 3\r\n"), std::string::npos);
  EXPECT_TRUE(out.ends_with("\r\n\r\n"));
  EXPECT_NE(render(get("PUT /healthz HTTP/1.1\r\n\r\n")).find("Allow: GET, HEAD\r\n"),
            std::string::npos);
}

// A connected socket to the admin port (blocking, with a receive timeout).
int admin_client(const io::Address& a, int timeout_ms) {
  int fd = socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  EXPECT_EQ(connect(fd, a.sa(), a.len), 0);
  return fd;
}

// The whole answer to `request`, or what came before the receive timeout.
std::string admin_ask(const io::Address& a, std::string_view request, int timeout_ms) {
  int fd = admin_client(a, timeout_ms);
  EXPECT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  close(fd);
  return out;
}

// Slowloris: one client holding every admin connection open without a word must not make
// /healthz and /readyz time out for the load balancer and the scraper (they would take the
// node out, or lose its metrics, for as long as the attack lasts).
TEST(AdminServer, SilentConnectionsDoNotLockOutAScraper) {
  Health h{0, false};
  MetricsRegistry reg(h);
  AdminServer admin(io::parse_address("127.0.0.1:0"), reg);
  admin.start();
  std::vector<int> idle;
  for (std::size_t i = 0; i < 4 * kAdminMaxConnections; ++i)
    idle.push_back(admin_client(admin.address(), 1000));
  // Well under the admin port's 5 s deadline for a request head.
  auto start = std::chrono::steady_clock::now();
  for (int k = 0; k < 3; ++k) {
    std::string answer = admin_ask(admin.address(), "GET /healthz HTTP/1.1\r\n\r\n", 1500);
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 200 OK\r\n")) << k << ": " << answer;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  for (int fd : idle) close(fd);
}

// Out of descriptors (a flood on the public port can cause it), accept fails while the
// connection stays queued: the admin thread must wait, not poll the listener in a tight loop
// that takes a CPU from the cores; and it must serve the connection once descriptors return.
TEST(AdminServer, RestsWhileOutOfDescriptors) {
  Health h{0, false};
  MetricsRegistry reg(h);
  AdminServer admin(io::parse_address("127.0.0.1:0"), reg);
  admin.start();
  int client = socket(admin.address().family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = 128;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> filler;
  for (int fd; (fd = dup(client)) >= 0;) filler.push_back(fd);
  ASSERT_EQ(connect(client, admin.address().sa(), admin.address().len), 0);
  auto cpu_ms = [] {
    rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000 +
           (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1000;
  };
  long before = cpu_ms();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  long spent = cpu_ms() - before;
  for (int fd : filler) close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_LT(spent, 150) << "ms of CPU in 500 ms while accept fails";
  std::string_view get = "GET /healthz HTTP/1.1\r\n\r\n";
  timeval tv{2, 0};
  setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  EXPECT_EQ(send(client, get.data(), get.size(), MSG_NOSIGNAL), static_cast<ssize_t>(get.size()));
  char buf[256];
  ssize_t n = recv(client, buf, sizeof buf, 0);
  EXPECT_TRUE(n > 0 &&
              std::string_view(buf, static_cast<std::size_t>(n)).starts_with("HTTP/1.1 200"));
  close(client);
}

// A --reuse-port replacement starts while the server it replaces still holds the admin
// address: it must take the address over once the old one exits, or after the swap the node
// has no /metrics and no /readyz at all (and a balancer that checks /readyz takes it out).
TEST(AdminServer, WaitsForAnAddressInUseAndTakesItWhenFree) {
  Health h{0, false};
  MetricsRegistry reg(h);
  // The old server's admin port.
  auto old = std::make_unique<AdminServer>(io::parse_address("127.0.0.1:0"), reg);
  io::Address taken = old->address();
  EXPECT_THROW(AdminServer(taken, reg), std::system_error);  // not asked to wait: start fails
  AdminServer next(taken, reg, true);
  EXPECT_FALSE(next.bound_at_start());
  next.start();
  old.reset();  // the old server exits
  std::string answer;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (!answer.starts_with("HTTP/1.1 200") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    int fd = socket(taken.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, taken.sa(), taken.len) == 0) {
      close(fd);
      answer = admin_ask(taken, "GET /healthz HTTP/1.1\r\n\r\n", 1000);
    } else {
      close(fd);
    }
  }
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 200 OK")) << answer;
}

// What serve() did, in order, for one core.
struct CoreEvents {
  std::mutex mu;
  std::vector<std::string> seen;
  void add(const char* e) {
    std::lock_guard<std::mutex> lock(mu);
    seen.emplace_back(e);
  }
  bool has(std::string_view e) {
    std::lock_guard<std::mutex> lock(mu);
    return std::find(seen.begin(), seen.end(), e) != seen.end();
  }
};

struct StopApp {
  CoreEvents* events;
  void on_open(ws::Connection) {}
  void on_message(ws::Connection, protocol::Opcode, std::span<std::byte>) {}
  void on_close(ws::Connection, std::uint16_t, std::string_view) {}
  void on_drain(ws::Connection) {}
  void on_stop() { events->add("on_stop"); }
};

// A scrape walks what the application owns (the bridge's links, by for_each_link) from the
// admin thread: the core must be unregistered before on_stop frees it, or a scrape during a
// shutdown reads freed memory.
TEST(ServeCoreHook, CoreUnregistersBeforeTheApplicationStops) {
  CoreEvents events;
  ServerOptions opts;
  opts.listen.push_back(io::parse_address("127.0.0.1:0"));
  opts.plain = true;
  opts.drain_ms = 0;
  auto hook = [&](unsigned, const auto&, const auto&, bool up) { events.add(up ? "up" : "down"); };
  std::thread server([&] {
    serve<StopApp>(
        opts, [&](unsigned) { return StopApp{&events}; }, {}, hook);
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!events.has("up") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // To serve()'s own thread, which blocks SIGTERM and waits for it (not to this process,
  // whose main thread would die of it).
  pthread_kill(server.native_handle(), SIGTERM);
  server.join();
  EXPECT_EQ(events.seen, (std::vector<std::string>{"up", "down", "on_stop"}));
}

}  // namespace
}  // namespace wsedge::ops
