#pragma once
// systemd integration (Type=notify): readiness, stopping, reloading and the watchdog, through
// libsystemd's sd_notify. Outside systemd (no NOTIFY_SOCKET) every call does nothing.
#include "engine/server.hpp"

namespace wsedge::app {

// Sets the server's hooks: READY=1 once every core serves, STOPPING=1 at a stop signal,
// RELOADING=1 then READY=1 around a reload (SIGHUP), and, when the unit has WatchdogSec=,
// WATCHDOG=1 every half period while every core's loop turns (a stuck core stops the pings,
// and systemd restarts the service).
void install_systemd_hooks(ServerOptions& opts);

}  // namespace wsedge::app
