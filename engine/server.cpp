#include "server.hpp"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <stdexcept>

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
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

std::vector<int> open_listeners(ServerOptions& opts) {
  std::vector<int> fds;
  for (unsigned i = 0; i < opts.cores; ++i) {
    fds.push_back(io::open_listener(opts.listen, opts.reactor.backlog));
    if (i == 0 && opts.listen.port() == 0) opts.listen.set_port(io::local_address(fds[0]).port());
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

void wait_for_stop(std::vector<io::Reactor*>& reactors, std::mutex& mu, bool& stopping) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  LOG_INFO("msg=\"stopping\" signal=%d", sig);
  {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
    for (io::Reactor* r : reactors) {
      if (r) r->request_stop();
    }
  }
  // A second signal while draining means "now": the threads are detached from our care.
  std::thread([set]() mutable {
    int again = 0;
    while (sigwait(&set, &again) == 0) {
      if (again == SIGINT) _exit(130);
    }
  }).detach();
}

void log_core_summary(const io::Reactor& r, const ws::EndpointCounters& c) {
  const io::ReactorCounters& k = r.counters();
  LOG_INFO(
      "msg=\"core stopped\" core=%u accepted=%llu closed=%llu handshakes=%llu rejected=%llu "
      "messages_in=%llu messages_out=%llu protocol_errors=%llu invalid_utf8=%llu too_big=%llu "
      "abnormal=%llu bytes_in=%llu bytes_out=%llu",
      r.core(), static_cast<unsigned long long>(k.accepted),
      static_cast<unsigned long long>(k.closed), static_cast<unsigned long long>(c.handshakes),
      static_cast<unsigned long long>(c.handshake_rejected),
      static_cast<unsigned long long>(c.messages_in),
      static_cast<unsigned long long>(c.messages_out),
      static_cast<unsigned long long>(c.protocol_errors),
      static_cast<unsigned long long>(c.invalid_utf8), static_cast<unsigned long long>(c.too_big),
      static_cast<unsigned long long>(c.abnormal_closes),
      static_cast<unsigned long long>(k.bytes_in), static_cast<unsigned long long>(k.bytes_out));
}

}  // namespace wsedge::server_detail
