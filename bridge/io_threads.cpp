#include "io_threads.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <thread>

namespace wsedge::bridge {
namespace {

// What libzmq's thread will do (src/thread.cpp, applySchedulingParameters): keep the inherited
// parameters and change the policy. Tried on a thread of our own, which inherits what libzmq's
// will.
bool batch_allowed() {
  bool ok = false;
  std::thread([&ok] {
    int policy = 0;
    sched_param param{};
    ok = pthread_getschedparam(pthread_self(), &policy, &param) == 0 &&
         pthread_setschedparam(pthread_self(), SCHED_BATCH, &param) == 0;
  }).join();
  return ok;
}

}  // namespace

IoThreads configure_io_threads(zmq::context_t& ctx, unsigned cores) {
  IoThreads t;
  t.count = static_cast<int>(std::max(1u, cores / 4));
  ctx.set(zmq::ctxopt::io_threads, t.count);
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (CPU_ISSET(cpu, &allowed)) ctx.set(zmq::ctxopt::thread_affinity_cpu_add, cpu);
  }
  t.batch = batch_allowed();
  if (t.batch) ctx.set(zmq::ctxopt::thread_sched_policy, SCHED_BATCH);
  return t;
}

}  // namespace wsedge::bridge
