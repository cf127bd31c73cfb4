#pragma once
// What /readyz answers from: plain atomics that cores, the bridge and the drain code set and the
// admin thread reads. Nothing here is taken per message.
#include <atomic>

namespace wsedge::ops {

struct Health {
  // Set once before the cores start.
  unsigned cores_expected = 0;
  // --ready-needs-backends: not ready while some route has no backend up on some core.
  bool needs_backends = false;
  // Cores registered with the metrics registry (each one after its on_start and listeners).
  std::atomic<unsigned> cores_up{0};
  std::atomic<bool> draining{false};

  // The drain code calls this first: load balancers stop sending before connections close.
  void set_draining() { draining.store(true, std::memory_order_relaxed); }
};

}  // namespace wsedge::ops
