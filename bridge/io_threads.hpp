#pragma once
// libzmq's own threads, which carry the bridge's TCP to its backends: how many, where they may
// run and how the kernel schedules them beside the reactors.
#include <zmq.hpp>

namespace wsedge::bridge {

struct IoThreads {
  int count = 1;       // I/O threads: one per four cores
  bool batch = false;  // SCHED_BATCH was allowed and is used
};

// Sets `ctx` up for `cores` reactors; call before it makes its first socket, which starts its
// threads (they take the settings they find then).
//  - Their CPUs: every CPU this process may use, set explicitly. Left alone, a thread inherits
//    its creator's, and the first socket is made on core 0's pinned thread: every I/O thread
//    would then share core 0's one CPU.
//  - SCHED_BATCH: a woken I/O thread does not preempt a running reactor but waits for the
//    reactor to block at the end of its turn or for the next tick, and then writes that whole
//    turn's messages in one batch. Preempting instead splits a turn's sends into one wake-up,
//    one `sendto` and one wake-up of the backend each (measured on the ES256 upgrades of
//    bench/auth: 0.60 wake-ups of libzmq's thread per handshake instead of 0.27 without a
//    token, which cost the server and the backend 6 CPU-µs each). An idle CPU still runs it at
//    once. Not used where the kernel refuses it (a seccomp filter, a real-time policy inherited
//    from a `chrt` launch): libzmq would abort its thread on the refusal, so it is tried first.
IoThreads configure_io_threads(zmq::context_t& ctx, unsigned cores);

}  // namespace wsedge::bridge
