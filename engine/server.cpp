#include "server.hpp"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

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
                   bool& stopping) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  auto each = [&](void (io::Reactor::*fn)()) {
    std::lock_guard<std::mutex> lock(mu);
    for (io::Reactor* r : reactors) {
      if (r) (r->*fn)();
    }
  };
  timespec rotate{static_cast<time_t>(opts.ticket_rotation_s), 0};
  int sig = 0;
  for (;;) {
    sig = opts.plain ? sigwaitinfo(&set, nullptr) : sigtimedwait(&set, nullptr, &rotate);
    if (sig < 0) {
      if (errno != EAGAIN) continue;
      try {
        tls::ticket_keys().rotate();  // tickets issued from now on use a new key
      } catch (const std::exception& e) {
        LOG_ERROR("ticket_rotation_failed", log::kv("error", e.what()),
                  log::kv("detail", "the current key stays"));
      }
      continue;
    }
    if (sig != SIGHUP) break;
    if (!opts.plain) {
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
    each(&io::Reactor::request_reload);
  }
  LOG_INFO("stopping", log::kv("signal", sig));
  {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
  }
  each(&io::Reactor::request_stop);
  // A second SIGINT while draining means "now".
  sigdelset(&set, SIGHUP);
  std::thread([set]() mutable {
    int again = 0;
    while (sigwait(&set, &again) == 0) {
      if (again == SIGINT) _exit(130);
    }
  }).detach();
}

void log_core_summary(const io::Reactor& r, const ws::EndpointCounters& c) {
  // Every counter, named as the metrics tables name them, so a log and a scrape compare.
  std::vector<log::Field> fields;
  append_metric_fields<io::ReactorCounters>(fields, io::kReactorMetrics, r.counters());
  append_metric_fields<ws::EndpointCounters>(fields, ws::kEndpointMetrics, c);
  if (log::enabled(log::Level::kInfo)) log::emit(log::Level::kInfo, "core_stopped", fields);
}

}  // namespace wsedge::server_detail
