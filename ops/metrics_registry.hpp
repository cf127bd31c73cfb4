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

// Adds a core's FixedHistogram to `family` in seconds: its bounds and sum are in units of which
// `units_per_second` make a second (1e6 for microseconds). Divided, so a bound of 250 us is the
// same double as the literal 0.00025 and prints as le="0.00025".
template <const auto& kBounds>
void add_histogram(Exposition& out, std::string_view family, std::string_view help,
                   std::span<const Label> labels, const FixedHistogram<kBounds>& h,
                   double units_per_second) {
  double bounds[std::size(kBounds)];
  for (std::size_t i = 0; i < std::size(kBounds); ++i)
    bounds[i] = static_cast<double>(kBounds[i]) / units_per_second;
  std::uint64_t buckets[FixedHistogram<kBounds>::kBuckets];
  for (std::size_t i = 0; i < std::size(buckets); ++i) buckets[i] = h.buckets[i].get();
  out.add_histogram(family, help, labels,
                    {bounds, buckets, static_cast<double>(h.sum.get()) / units_per_second});
}

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
