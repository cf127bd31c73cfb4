#pragma once
// Runs an application on N cores, share-nothing: each core gets a pinned thread with its own
// reactor, its own SO_REUSEPORT listener on each address (the kernel spreads connections
// across the cores), its own endpoint and its own application object. SIGINT/SIGTERM stop all cores
// gracefully (Close 1001 to every client); a second signal exits at once.
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/io/address.hpp"
#include "engine/io/reactor.hpp"
#include "engine/log.hpp"
#include "engine/ws/endpoint.hpp"
#include "tls/context.hpp"

namespace wsedge {

struct ServerOptions {
  std::vector<io::Address> listen;  // every core serves each of them
  // Join a port that another process already serves (the kernel then splits connections
  // between the two): only for replacing a running server without a gap.
  bool reuse_port = false;
  unsigned cores = 1;
  bool plain = false;                 // ws:// instead of wss://
  tls::Config tls;                    // certificates for wss://
  unsigned ticket_rotation_s = 3600;  // session-ticket key lifetime
  io::ReactorConfig reactor;
  ws::EndpointConfig endpoint;
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
// Serves signals until a stop: SIGHUP reloads TLS certificates (checked here first, so a bad
// one is refused before any core sees it), and ticket keys rotate on schedule.
void wait_for_stop(const ServerOptions& opts, std::vector<io::Reactor*>& reactors, std::mutex& mu,
                   bool& stopping);
void log_core_summary(const io::Reactor& r, const ws::EndpointCounters& c);
}  // namespace server_detail

// make_app(core_index) returns the App for one core; on_listening sees each address, in order,
// once its port is known. The App's optional on_start(Endpoint<App>&) runs on the core's thread
// before the first connection (open backend sockets, watch their fds, set timers); its optional
// on_stop() runs there after the last connection is gone, before the core's reactor is
// destroyed. Blocks until stopped; throws what a core threw.
template <class App, class MakeApp>
void serve(ServerOptions opts, MakeApp make_app,
           std::function<void(const io::Address&)> on_listening = {}) {
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
  bool stopping = false;
  std::vector<io::Reactor*> reactors(opts.cores, nullptr);
  std::exception_ptr error;
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
          endpoint.set_tls_loader([&opts] { return tls::Context::load(opts.tls); });
        }
        if constexpr (requires { app.on_start(endpoint); }) app.on_start(endpoint);
        for (int fd : listeners[i]) reactor.listen(fd);
        {
          std::lock_guard<std::mutex> lock(mu);
          reactors[i] = &reactor;
          if (stopping) reactor.request_stop();
        }
        reactor.run(endpoint);
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
      // Whoever ends first, for whatever reason, stops the others.
      kill(getpid(), SIGTERM);
    });
  }
  wait_for_stop(opts, reactors, mu, stopping);
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace wsedge
