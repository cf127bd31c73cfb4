#include "ops_sources.hpp"

namespace wsedge::app {

namespace {

using ops::FamilyType;

constexpr const char* kRefusedHelp = "upgrades refused, by reason";

template <class Struct>
void collect_table(ops::Exposition& out, const ops::Label& core,
                   std::span<const MetricInfo<Struct>> table, const Struct& s) {
  for_each_metric(table, s, [&](const MetricInfo<Struct>& m, std::uint64_t v) {
    out.add(ops::metric_name(m.name), m.help,
            m.type == MetricType::kGauge ? FamilyType::kGauge : FamilyType::kCounter, {core}, v);
  });
}

}  // namespace

void collect_bridge(const void* p, ops::Exposition& out, const ops::Label& core) {
  const auto& edge = *static_cast<const bridge::Edge*>(p);
  const bridge::BridgeCounters& c = edge.counters();
  collect_table<bridge::BridgeCounters>(out, core, bridge::kBridgeMetrics, c);
  using bridge::TypeCounters;
  for (auto [direction, types] : {std::pair{"up", &c.sent}, {"down", &c.received}}) {
    for (std::size_t i = 0; i < std::size(TypeCounters::kNames); ++i)
      out.add("wsedge_bridge_messages_total",
              "bridge messages by direction (up: to backends, down: from them) and type",
              FamilyType::kCounter,
              {core, {"direction", direction}, {"type", TypeCounters::kNames[i]}}, types->by[i]);
  }
  edge.for_each_link([&](const std::string& endpoint, const Counter& up) {
    out.add("wsedge_bridge_backend_up", "1 while the backend link is up (WELCOME received)",
            FamilyType::kGauge, {core, {"endpoint", endpoint}}, up);
  });
  out.add("wsedge_upgrades_refused_total", kRefusedHelp, FamilyType::kCounter,
          {core, {"reason", "outage"}}, c.outage_refused);
}

void collect_auth(const void* p, ops::Exposition& out, const ops::Label& core) {
  const auto& c = *static_cast<const auth::AuthCounters*>(p);
  // The names the exit log prints, unchanged, then the labelled families built from the same
  // counters (a dashboard sums by label; the flat names stay for whoever reads the log).
  auth::for_each_auth_metric(
      c, [&](const char* name, const char* help, MetricType type, const Counter& v) {
        out.add(ops::metric_name(name), help,
                type == MetricType::kGauge ? FamilyType::kGauge : FamilyType::kCounter, {core}, v);
      });
  constexpr const char* kVerifyHelp = "token checks at the upgrade, by result (ok or the reason)";
  out.add("wsedge_auth_verifications_total", kVerifyHelp, FamilyType::kCounter,
          {core, {"result", "ok"}}, c.admitted);
  std::uint64_t refused = 0;
  for (std::size_t r = 1; r < static_cast<std::size_t>(auth::TokenError::kCount); ++r) {
    refused += c.refused[r];
    out.add("wsedge_auth_verifications_total", kVerifyHelp, FamilyType::kCounter,
            {core, {"result", auth::metric_name(static_cast<auth::TokenError>(r))}}, c.refused[r]);
  }
  for (std::size_t alg = 0; alg < auth::AuthCounters::kAlgs; ++alg) {
    for (std::size_t bad = 0; bad < 2; ++bad)
      out.add("wsedge_auth_tokens_by_alg_total",
              "tokens whose key was found, by the key's algorithm and result (ok, or refused "
              "after it: bad signature, expired, ...)",
              FamilyType::kCounter,
              {core,
               {"alg", auth::alg_name(static_cast<auth::Alg>(alg))},
               {"result", bad ? "refused" : "ok"}},
              c.by_alg[alg][bad]);
    // Only the algorithms that verified something: eight idle histograms per core say nothing.
    if (c.verify_time[alg].count() == 0) continue;
    ops::Label labels[] = {core, {"alg", auth::alg_name(static_cast<auth::Alg>(alg))}};
    ops::add_histogram(
        out, "wsedge_auth_verify_duration_seconds",
        "time inside token verification (parse, signature, claims) for tokens whose "
        "key was found, at the upgrade and in-band refreshes, by the key's algorithm",
        labels, c.verify_time[alg], 1e9);
  }
  out.add("wsedge_upgrades_refused_total", kRefusedHelp, FamilyType::kCounter,
          {core, {"reason", "auth"}}, refused);
  out.add("wsedge_upgrades_refused_total", kRefusedHelp, FamilyType::kCounter,
          {core, {"reason", "acl"}}, c.denied_connect);
  for (auto [perm, v] : {std::pair{"connect", &c.denied_connect},
                         {"subscribe", &c.denied_subscribe},
                         {"publish", &c.denied_publish}})
    out.add("wsedge_acl_denials_total", "ACL denials by permission", FamilyType::kCounter,
            {core, {"permission", perm}}, *v);
}

ops::CoreSources bridge_sources(const ws::Endpoint<bridge::Edge>& endpoint,
                                const bridge::Edge& edge) {
  ops::CoreSources s;
  s.reactor = &endpoint.reactor().counters();
  s.endpoint = &endpoint.counters();
  s.apps[0] = {&edge, collect_bridge};
  if (const auth::AuthCounters* a = edge.auth_counters()) s.apps[1] = {a, collect_auth};
  s.routes_down = &edge.counters().routes_down;
  return s;
}

}  // namespace wsedge::app
