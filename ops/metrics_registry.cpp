#include "metrics_registry.hpp"

namespace wsedge::ops {

namespace {

FamilyType family_type(MetricType t) {
  return t == MetricType::kGauge ? FamilyType::kGauge : FamilyType::kCounter;
}

template <class Struct>
void collect_table(Exposition& out, const Label& core, std::span<const MetricInfo<Struct>> table,
                   const Struct& s) {
  for_each_metric(table, s, [&](const MetricInfo<Struct>& m, std::uint64_t v) {
    out.add(metric_name(m.name), m.help, family_type(m.type), {core}, v);
  });
}

constexpr const char* kRefusedHelp = "upgrades refused, by reason";

}  // namespace

std::string metric_name(std::string_view table_name) {
  return std::string("wsedge_").append(table_name);
}

void collect_engine(Exposition& out, const Label& core, const io::ReactorCounters& r,
                    const ws::EndpointCounters& e) {
  collect_table<io::ReactorCounters>(out, core, io::kReactorMetrics, r);
  collect_table<ws::EndpointCounters>(out, core, ws::kEndpointMetrics, e);

  using ws::CloseCounters;
  static constexpr std::string_view kSides[] = {"client", "server"};
  for (std::size_t side = 0; side < CloseCounters::kSides; ++side) {
    for (std::size_t slot = 0; slot < CloseCounters::kSlots; ++slot) {
      out.add("wsedge_closes_total",
              "WebSocket connections closed, by close code and by the side that closed first "
              "(client: the peer's Close came first or its TCP went away)",
              FamilyType::kCounter,
              {core, {"code", CloseCounters::label(slot)}, {"side", kSides[side]}},
              e.closes.by[side][slot]);
    }
  }

  // The engine's refusals by reason; applications add theirs (auth, acl, outage) to the family.
  const std::pair<const char*, const Counter*> refused[] = {
      {"origin", &e.origin_refused},
      {"ip_limit", &e.ip_conn_refused},
      {"ip_rate", &e.ip_rate_refused},
      {"decision_timeout", &e.upgrade_timeouts},
  };
  for (const auto& [reason, c] : refused)
    out.add("wsedge_upgrades_refused_total", kRefusedHelp, FamilyType::kCounter,
            {core, {"reason", reason}}, *c);

  Label labels[] = {core};
  add_histogram(out, "wsedge_handshake_duration_seconds",
                "accept to the 101 answer of WebSocket upgrades (the server's turn clock)", labels,
                e.handshake_time, 1e6);
}

MetricsRegistry::MetricsRegistry(Health& health) : health_(health), cores_(health.cores_expected) {}

void MetricsRegistry::add(unsigned core, const CoreSources& s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (core >= cores_.size()) cores_.resize(core + 1);
  if (!cores_[core].reactor) health_.cores_up.fetch_add(1, std::memory_order_relaxed);
  cores_[core] = s;
}

void MetricsRegistry::remove(unsigned core) {
  std::lock_guard<std::mutex> lock(mu_);
  if (core >= cores_.size() || !cores_[core].reactor) return;
  cores_[core] = {};
  health_.cores_up.fetch_sub(1, std::memory_order_relaxed);
}

void MetricsRegistry::collect(Exposition& out) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (std::size_t i = 0; i < cores_.size(); ++i) {
    const CoreSources& s = cores_[i];
    if (!s.reactor) continue;
    std::string index = std::to_string(i);
    Label core{"core", index};
    collect_engine(out, core, *s.reactor, *s.endpoint);
    for (const AppSource& a : s.apps) {
      if (a.collect) a.collect(a.counters, out, core);
    }
  }
}

std::string MetricsRegistry::scrape() const {
  Exposition out;
  collect(out);
  return out.text();
}

std::string MetricsRegistry::not_ready() const {
  if (health_.draining.load(std::memory_order_relaxed)) return "draining";
  unsigned up = health_.cores_up.load(std::memory_order_relaxed);
  if (up < health_.cores_expected)
    return std::to_string(up)
        .append(" of ")
        .append(std::to_string(health_.cores_expected))
        .append(" cores up");
  if (!health_.needs_backends) return {};
  std::lock_guard<std::mutex> lock(mu_);
  for (std::size_t i = 0; i < cores_.size(); ++i) {
    if (cores_[i].routes_down && cores_[i].routes_down->get() > 0)
      return std::string("core ")
          .append(std::to_string(i))
          .append(": ")
          .append(std::to_string(cores_[i].routes_down->get()))
          .append(" route(s) without a backend up");
  }
  return {};
}

}  // namespace wsedge::ops
