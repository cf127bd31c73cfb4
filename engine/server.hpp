#pragma once
// Runs an application on N cores, share-nothing: each core gets a pinned thread with its own
// reactor, its own SO_REUSEPORT listener on each address (the kernel spreads connections
// across the cores), its own endpoint and its own application object. SIGTERM drains: no new
// connections, Close 1001 to every client spread over drain_ms, then exit; SIGINT closes them
// all at once. A second signal while draining closes the rest at once; a further SIGINT exits.
#include <atomic>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/io/address.hpp"
#include "engine/io/reactor.hpp"
#include "engine/log.hpp"
#include "engine/published.hpp"
#include "engine/ws/endpoint.hpp"
#include "tls/context.hpp"

namespace wsedge {

struct ServerOptions {
  std::vector<io::Address> listen;  // every core serves each of them
  // By index of `listen` (missing: false): connections there come through a proxy and start
  // with a PROXY protocol header (EndpointBase::set_listener_proxy).
  std::vector<bool> proxy_protocol;
  // Join a port that another process already serves (the kernel then splits connections
  // between the two): only for replacing a running server without a gap.
  bool reuse_port = false;
  unsigned cores = 1;
  bool plain = false;                 // ws:// instead of wss://
  tls::Config tls;                    // certificates for wss://
  unsigned ticket_rotation_s = 3600;  // session-ticket key lifetime
  io::ReactorConfig reactor;
  ws::EndpointConfig endpoint;
  std::uint32_t drain_ms = 10000;  // SIGTERM: how long closing every client may take
  // Called on the main thread, for operations (readiness, systemd): none may block long.
  struct Hooks {
    std::function<void()> ready;      // every core serves (once)
    std::function<void()> stopping;   // a stop signal came, before the cores hear of it
    std::function<void()> reloading;  // SIGHUP came; reloaded() follows, applied or refused
    std::function<void()> reloaded;
    // Every alive_ms in which every core's loop has turned (a stuck core stops the calls).
    std::function<void()> alive;
    std::uint32_t alive_ms = 0;
  } hooks;
};

// The pieces of serve() that do not depend on the application.
namespace server_detail {
unsigned online_cpus();
void raise_fd_limit();
void block_stop_signals();
// Opens one listener per core and address (result[core][address]); resolves each port 0 to
// the port the first listener on that address got. Throws "address in use" for an address
// another process serves, unless opts.reuse_port.
std::vector<std::vector<int>> open_listeners(ServerOptions& opts);
void pin_to_cpu(unsigned index);
// What the main thread decided, under the cores' mutex: a core that starts after the stop
// signal stops at once, with the same drain window.
struct StopState {
  bool stopping = false;
  std::uint32_t drain_ms = 0;
};
// Serves signals until a stop: SIGHUP reloads (see serve()'s on_sighup), and ticket keys rotate
// on schedule. Without on_sighup, TLS certificates are checked here first, so a bad one is
// refused before any core sees it.
void wait_for_stop(const ServerOptions& opts, std::vector<io::Reactor*>& reactors, std::mutex& mu,
                   StopState& stop, const std::function<bool()>& on_sighup = {});
// After the first stop: further signals shorten the drain (SIGTERM, SIGINT) or end the process
// (a second SIGINT), until `done`.
void watch_second_signal(std::vector<io::Reactor*>& reactors, std::mutex& mu,
                         const std::atomic<bool>& done);
void log_core_summary(const io::Reactor& r, const ws::EndpointCounters& c);
}  // namespace server_detail

// on_core(core, endpoint, app, up) for serve(): a core says it serves (up, after on_start and
// its listeners) and that it is about to go (down, before the App's on_stop and before its
// endpoint and app are destroyed, also when it fails): the admin port registers the core's
// counters between the two.
struct NoCoreHook {
  template <class Endpoint, class App>
  void operator()(unsigned, const Endpoint&, const App&, bool) const {}
};

// make_app(core_index) returns the App for one core; on_listening sees each address, in order,
// once its port is known. The App's optional on_start(Endpoint<App>&) runs on the core's thread
// before the first connection (open backend sockets, watch their fds, set timers); its optional
// on_stop() runs there after the last connection is gone, before the core's reactor is
// destroyed. Blocks until stopped; throws what a core threw.
//
// on_sighup runs on the main thread at each SIGHUP: it checks everything a reload would load
// and returns the options to serve from now on, or null to refuse the reload (no core hears of
// it, nothing changes). The options are published whole; each core takes them in its
// on_reload, on its own thread: the TLS certificates they name and their endpoint config
// (EndpointBase::reconfigure); the App's on_reload then takes what it reloads. Listeners,
// cores and the reactor's sizes are the start's: on_sighup keeps them. Without on_sighup a
// SIGHUP reloads the same certificate files.
template <class App, class MakeApp, class OnCore = NoCoreHook>
void serve(ServerOptions opts, MakeApp make_app,
           std::function<void(const io::Address&)> on_listening = {}, OnCore on_core = {},
           std::function<std::shared_ptr<const ServerOptions>()> on_sighup = {}) {
  using namespace server_detail;
  io::probe_kernel_features();
  raise_fd_limit();
  block_stop_signals();
  if (!opts.plain) tls::Context::load(opts.tls);  // fail at start-up, with the file's name
  std::vector<std::vector<int>> listeners = open_listeners(opts);
  if (on_listening) {
    for (const io::Address& a : opts.listen) on_listening(a);
  }

  std::mutex mu;
  StopState stop;
  std::vector<io::Reactor*> reactors(opts.cores, nullptr);
  std::exception_ptr error;
  Published<ServerOptions> live(std::make_shared<const ServerOptions>(opts));
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < opts.cores; ++i) {
    threads.emplace_back([&, i] {
      try {
        pin_to_cpu(i);
        log::set_core(static_cast<int>(i));
        io::Reactor reactor(opts.reactor, i);
        App app = make_app(i);
        ws::Endpoint<App> endpoint(reactor, opts.endpoint, app);
        if (!opts.plain) {
          // Each core loads its own SSL_CTX from the files: nothing TLS is shared between cores.
          endpoint.set_tls(tls::Context::load(opts.tls));
          endpoint.set_tls_loader([&live] { return tls::Context::load(live.get()->tls); });
        }
        if (on_sighup) endpoint.set_config_loader([&live] { return live.get()->endpoint; });
        if constexpr (requires { app.on_start(endpoint); }) app.on_start(endpoint);
        for (std::size_t k = 0; k < listeners[i].size(); ++k) {
          unsigned index = reactor.listen(listeners[i][k]);
          if (k < opts.proxy_protocol.size() && opts.proxy_protocol[k])
            endpoint.set_listener_proxy(index);
        }
        // Down before what it registered goes, whichever way this scope is left.
        struct Registered {
          OnCore& hook;
          unsigned core;
          const ws::Endpoint<App>& endpoint;
          const App& app;
          bool up = true;
          void down() {
            if (up) hook(core, endpoint, app, false);
            up = false;
          }
          ~Registered() { down(); }
        } registered{on_core, i, endpoint, app};
        on_core(i, endpoint, app, true);
        {
          std::lock_guard<std::mutex> lock(mu);
          reactors[i] = &reactor;
          if (stop.stopping) reactor.request_stop(stop.drain_ms);
        }
        reactor.run(endpoint);
        // Before on_stop: a scrape on the admin thread walks what the application owns (the
        // bridge's backend links), which on_stop frees.
        registered.down();
        // Before the reactor and endpoint go: the application closes what it opened.
        if constexpr (requires { app.on_stop(); }) app.on_stop();
        log_core_summary(reactor, endpoint.counters());
        std::lock_guard<std::mutex> lock(mu);
        reactors[i] = nullptr;
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        reactors[i] = nullptr;
      }
      // Whoever ends first, for whatever reason, stops the others; once they are stopping,
      // a signal would be taken for a second one and cut the others' drains short.
      bool others_run;
      {
        std::lock_guard<std::mutex> lock(mu);
        others_run = !stop.stopping;
      }
      if (others_run) kill(getpid(), SIGTERM);
    });
  }
  std::function<bool()> reload;
  if (on_sighup) {
    reload = [&] {
      std::shared_ptr<const ServerOptions> next = on_sighup();
      if (!next) return false;
      live.publish(std::move(next));
      return true;
    };
  }
  wait_for_stop(opts, reactors, mu, stop, reload);
  std::atomic<bool> done{false};
  std::thread signals([&] { watch_second_signal(reactors, mu, done); });
  for (auto& t : threads) t.join();
  done = true;
  signals.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace wsedge
