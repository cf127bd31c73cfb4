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
//    its creator's, and with `--backend` the first socket is made by a core's thread after it is
//    pinned (whichever core builds its Edge first): every I/O thread would then share that
//    core's one CPU.
//  - SCHED_BATCH: a woken I/O thread does not preempt a running reactor but waits for the
//    reactor to block at the end of its turn, and then writes that whole turn's messages in one
//    batch. Preempting instead splits a turn's sends into one wake-up, one `sendto` and one
//    wake-up of the backend each (measured on the ES256 upgrades of bench/auth: 0.60 wake-ups of
//    libzmq's thread per handshake instead of 0.27 without a token, which cost the server and
//    the backend 6 CPU-us each). An idle CPU still runs it at once. The price is paid only when
//    no CPU is idle and a reactor never blocks: a message then waits for the reactor's time
//    slice to end (a few ms, at the next tick after it) at each pass through the I/O thread.
//  - Not SCHED_BATCH where the kernel refuses it (a real-time policy inherited from a `chrt`
//    launch, whose priority SCHED_BATCH does not take; SCHED_IDLE under RLIMIT_NICE; a filter on
//    the policy): libzmq aborts the process when its thread's policy cannot be set, so the same
//    calls are tried first. (A filter that refuses sched_setscheduler outright fails libzmq's
//    threads with or without this: they set their parameters whatever they are given.)
IoThreads configure_io_threads(zmq::context_t& ctx, unsigned cores);

}  // namespace wsedge::bridge
