#pragma once
// Every core's live counters, gathered by one exporter (Seastar's model: each core keeps its own
// values and a scrape labels them core="N"). A core registers read-only pointers to its counter
// structs once it serves and removes them before they are destroyed; a scrape only loads them
// (relaxed atomics, engine/counter.hpp), so reading metrics never stalls a core. The mutex
// guards registration against a scrape's walk: a core takes it twice in its life, never per
// message.
#include <mutex>
#include <string>
#include <vector>

#include "engine/io/reactor.hpp"
#include "engine/ws/counters.hpp"
#include "exposition.hpp"
#include "health.hpp"

namespace wsedge::ops {

// An application's counters on one core (the bridge's, the auth gate's): `collect` adds their
// families to a scrape, every sample with the `core` label. A function pointer over a const
// void*, so the registry knows no application and no virtual dispatch is needed.
struct AppSource {
  const void* counters = nullptr;
  void (*collect)(const void* counters, Exposition& out, const Label& core) = nullptr;
};

struct CoreSources {
  static constexpr std::size_t kMaxApps = 4;
  const io::ReactorCounters* reactor = nullptr;
  const ws::EndpointCounters* endpoint = nullptr;
  AppSource apps[kMaxApps];  // unused ones have no collect
  // Readiness with --ready-needs-backends: routes with no backend up on this core (a gauge the
  // bridge keeps); null when the application has no backends.
  const Counter* routes_down = nullptr;
};

class MetricsRegistry {
 public:
  // `health.cores_expected` cores; their count up is kept in `health.cores_up`.
  explicit MetricsRegistry(Health& health);
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // The core's thread, once it serves / before its counters are destroyed.
  void add(unsigned core, const CoreSources& s);
  void remove(unsigned core);

  // Adds every registered core's families to `out`.
  void collect(Exposition& out) const;
  // The /metrics body.
  std::string scrape() const;
  // /readyz: empty when ready, else a one-line reason.
  std::string not_ready() const;

  const Health& health() const { return health_; }

 private:
  Health& health_;
  mutable std::mutex mu_;
  std::vector<CoreSources> cores_;  // by core; reactor == nullptr: not registered
};

// The engine's own families for one core (the reactor and endpoint tables, closes by code and
// side, upgrades refused, the handshake histogram). Exposed for the tests.
void collect_engine(Exposition& out, const Label& core, const io::ReactorCounters& r,
                    const ws::EndpointCounters& e);

// The prefix every family gets: "wsedge_" + a table's name.
std::string metric_name(std::string_view table_name);

}  // namespace wsedge::ops
