#include <gtest/gtest.h>

#include <set>
#include <string>

#include "app/ops_sources.hpp"
#include "auth/gate.hpp"
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

}  // namespace
}  // namespace wsedge::ops
