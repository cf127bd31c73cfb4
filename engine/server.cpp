#include "server.hpp"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <stdexcept>
#include <string>

namespace wsedge::server_detail {

unsigned online_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<unsigned>(CPU_COUNT(&set));
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1;
}

void raise_fd_limit() {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

void block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

namespace {
// A listener that stops drops the connections queued on it, unless the kernel moves them to
// another listener of the port (net.ipv4.tcp_migrate_req, Linux 5.14): without it, a
// replacement loses the few connections that arrive as the old server stops listening.
void warn_unless_migrating() {
  char v = '0';
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/tcp_migrate_req", "r")) {
    v = static_cast<char>(std::fgetc(f));
    std::fclose(f);
  }
  if (v != '1')
    LOG_WARN("reuse_port_without_migration",
             log::kv("detail",
                     "net.ipv4.tcp_migrate_req is not 1: connections queued on a listener when its "
                     "server stops are reset (docs/OPERATIONS.md section 4)"));
}
}  // namespace

std::vector<std::vector<int>> open_listeners(ServerOptions& opts) {
  // SO_REUSEPORT, which lets every core own a listener, also lets a second server join the port
  // and silently take a share of its connections, so check that nobody serves it yet. A server
  // that starts between this probe and our bind below still gets in: that window is
  // microseconds wide, at start-up only. Port 0 needs no check: the kernel picks a free port.
  if (!opts.reuse_port) {
    for (const io::Address& addr : opts.listen) {
      if (addr.port() != 0 && io::address_in_use(addr))
        throw std::runtime_error("address in use: " + addr.to_string() +
                                 " is already served (--reuse-port joins it on purpose)");
    }
  }
  if (opts.reuse_port) warn_unless_migrating();
  std::vector<std::vector<int>> fds(opts.cores);
  for (io::Address& addr : opts.listen) {
    for (unsigned i = 0; i < opts.cores; ++i) {
      fds[i].push_back(io::open_listener(addr, opts.reactor.backlog));
      if (i == 0 && addr.port() == 0) addr.set_port(io::local_address(fds[0].back()).port());
    }
  }
  return fds;
}

void pin_to_cpu(unsigned index) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  // The index-th CPU this process may run on, so taskset/cgroup limits are respected.
  unsigned seen = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    if (seen++ == index) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      pthread_setaffinity_np(pthread_self(), sizeof one, &one);
      return;
    }
  }
}

void wait_for_stop(const ServerOptions& opts, std::vector<io::Reactor*>& reactors, std::mutex& mu,
                   StopState& stop, const std::function<bool()>& on_sighup) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  auto each = [&](auto&& fn) {
    std::lock_guard<std::mutex> lock(mu);
    for (io::Reactor* r : reactors) {
      if (r) fn(*r);
    }
  };
  // The main thread wakes every 100 ms: to see every core up (ready), to check each core's
  // heartbeat (alive), and to rotate ticket keys on schedule.
  constexpr std::uint64_t kPollMs = 100;
  timespec poll{0, static_cast<long>(kPollMs * 1000000)};
  std::uint64_t now = io::Reactor::monotonic_ns() / 1000000;
  std::uint64_t next_rotation = now + std::uint64_t{opts.ticket_rotation_s} * 1000;
  std::uint64_t next_alive = now + opts.hooks.alive_ms;
  std::vector<std::uint64_t> beats(reactors.size(), 0);
  bool ready = false;
  int sig = 0;
  for (;;) {
    sig = sigtimedwait(&set, nullptr, &poll);
    now = io::Reactor::monotonic_ns() / 1000000;
    if (!ready) {
      std::lock_guard<std::mutex> lock(mu);
      ready = std::all_of(reactors.begin(), reactors.end(), [](io::Reactor* r) { return r; });
      if (ready && opts.hooks.ready) opts.hooks.ready();
    }
    if (opts.hooks.alive && ready && now >= next_alive) {
      next_alive = now + opts.hooks.alive_ms;
      // Alive only if every core's loop has ticked since the last check.
      bool all = true;
      std::lock_guard<std::mutex> lock(mu);
      for (std::size_t i = 0; i < reactors.size(); ++i) {
        std::uint64_t b = reactors[i] ? reactors[i]->heartbeat_ms() : 0;
        all = all && reactors[i] && b != beats[i];
        beats[i] = b;
      }
      if (all) opts.hooks.alive();
    }
    if (!opts.plain && now >= next_rotation) {
      next_rotation = now + std::uint64_t{opts.ticket_rotation_s} * 1000;
      try {
        tls::ticket_keys().rotate();  // tickets issued from now on use a new key
      } catch (const std::exception& e) {
        LOG_ERROR("ticket_rotation_failed", log::kv("error", e.what()),
                  log::kv("detail", "the current key stays"));
      }
    }
    if (sig < 0) continue;
    if (sig != SIGHUP) break;
    if (opts.hooks.reloading) opts.hooks.reloading();
    if (on_sighup) {
      if (!on_sighup()) {  // refused (logged there): no core reloads anything
        if (opts.hooks.reloaded) opts.hooks.reloaded();
        continue;
      }
    } else if (!opts.plain) {
      try {
        tls::Context::load(opts.tls);
        LOG_INFO("tls_reloading");
      } catch (const std::exception& e) {
        LOG_ERROR("tls_reload_refused", log::kv("error", e.what()),
                  log::kv("detail", "the old certificates keep serving"));
      }
    }
    // Every core, plain or not: applications reload too (auth keys, the ACL), each core its
    // own, all or nothing; a core's TLS loader refuses certificates that failed here as well.
    each([](io::Reactor& r) { r.request_reload(); });
    if (opts.hooks.reloaded) opts.hooks.reloaded();
  }
  std::uint32_t window = sig == SIGTERM ? opts.drain_ms : 0;
  LOG_INFO("stopping", log::kv("signal", sig), log::kv("drain_ms", window));
  if (opts.hooks.stopping) opts.hooks.stopping();
  {
    std::lock_guard<std::mutex> lock(mu);
    stop.stopping = true;
    stop.drain_ms = window;
  }
  each([window](io::Reactor& r) { r.request_stop(window); });
}

void watch_second_signal(std::vector<io::Reactor*>& reactors, std::mutex& mu,
                         const std::atomic<bool>& done) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  timespec poll{0, 100 * 1000000};
  bool shortened = false;
  while (!done) {
    int sig = sigtimedwait(&set, nullptr, &poll);
    if (sig < 0) continue;
    // A second SIGINT after the drain was cut short means "now".
    if (sig == SIGINT && shortened) _exit(130);
    shortened = true;
    LOG_INFO("drain_cut_short", log::kv("signal", sig));
    std::lock_guard<std::mutex> lock(mu);
    for (io::Reactor* r : reactors) {
      if (r) r->request_stop(0);
    }
  }
}

void log_core_summary(const io::Reactor& r, const ws::EndpointCounters& c) {
  // Every counter, named as the metrics tables name them, so a log and a scrape compare.
  std::vector<log::Field> fields;
  append_metric_fields<io::ReactorCounters>(fields, io::kReactorMetrics, r.counters());
  append_metric_fields<ws::EndpointCounters>(fields, ws::kEndpointMetrics, c);
  if (log::enabled(log::Level::kInfo)) log::emit(log::Level::kInfo, "core_stopped", fields);
}

}  // namespace wsedge::server_detail
