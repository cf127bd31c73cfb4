#include "systemd.hpp"

#include <systemd/sd-daemon.h>

#include <cstdint>

#include "engine/log.hpp"

namespace wsedge::app {

void install_systemd_hooks(ServerOptions& opts) {
  opts.hooks.ready = [] { sd_notify(0, "READY=1\nSTATUS=serving"); };
  opts.hooks.stopping = [] { sd_notify(0, "STOPPING=1\nSTATUS=draining"); };
  opts.hooks.reloading = [] { sd_notify(0, "RELOADING=1\nSTATUS=reloading"); };
  opts.hooks.reloaded = [] { sd_notify(0, "READY=1\nSTATUS=serving"); };
  std::uint64_t usec = 0;
  // WATCHDOG_USEC (and WATCHDOG_PID, if set, naming this process): the unit's WatchdogSec.
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    // Half the period, as sd_watchdog_enabled(3) advises; at least the main thread's 100 ms
    // poll, which is how often it looks.
    opts.hooks.alive_ms = static_cast<std::uint32_t>(usec / 2000 < 100 ? 100 : usec / 2000);
    opts.hooks.alive = [] { sd_notify(0, "WATCHDOG=1"); };
    LOG_INFO("systemd_watchdog", log::kv("period_ms", usec / 1000));
  }
}

}  // namespace wsedge::app
