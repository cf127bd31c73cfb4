#pragma once
// The application's counters for the admin port (ops/metrics_registry.hpp): the bridge's and the
// auth gate's, registered by each core beside the engine's. ops/ knows no application; this is
// where the two meet.
#include "bridge/edge.hpp"
#include "ops/metrics_registry.hpp"

namespace wsedge::app {

// The sources of one bridge core: its counters, its links' up gauges, and the auth gate's
// counters when auth or an ACL is on. `edge` must have run on_start.
ops::CoreSources bridge_sources(const ws::Endpoint<bridge::Edge>& endpoint,
                                const bridge::Edge& edge);

// Exposed for the tests: the families of one core's bridge and auth counters.
void collect_bridge(const void* edge, ops::Exposition& out, const ops::Label& core);
void collect_auth(const void* counters, ops::Exposition& out, const ops::Label& core);

}  // namespace wsedge::app
