#pragma once
// One reactor per core: an io_uring event loop over TCP byte streams. It knows sockets,
// buffers and time, nothing of WebSocket; the layer above (a Handler) gets bytes and events:
//
//   void on_accept(SocketId);              new server-side connection, already reading
//                                          (listener(id) says on which listening socket)
//   void on_connect(SocketId, int err);    client connect finished (err 0) or failed (errno)
//   void on_data(SocketId, std::byte*, std::size_t);  bytes from a provided buffer, which the
//                                          kernel may fill again once this returns
//   void on_peer_closed(SocketId, int err);  the peer's FIN (0) or an error while open; every
//                                          byte received before it was delivered. The handler
//                                          must close() (flushes what is queued: a half-closed
//                                          peer still reads) or abort(), else the reactor
//                                          aborts
//   void on_drain(SocketId);               output fell below the low-water mark again
//   void on_timer(SocketId);               the connection's timer is due
//   void on_stop();                        request_stop() was called
//   void on_reload();                      request_reload() was called
//   void on_flush();                       the turn's completions are done; output is next
//
// Code above the reactor also submits operations of its own (Completion), watches foreign
// file descriptors (FdWatch: ZeroMQ's ZMQ_FD, eventfds) and sets any number of timers
// (schedule/cancel), all on this core's thread.
//
// Each loop turn: submit everything queued and wait for one completion, run every completion
// that arrived, hand back consumed buffers, then flush each connection's output as one send.
#include <liburing.h>
#include <poll.h>
#include <unistd.h>
#include <memory>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "address.hpp"
#include "buffer_ring.hpp"
#include "engine/counter.hpp"
#include "engine/memory/buffer_pool.hpp"
#include "peer_address.hpp"
#include "ring.hpp"
#include "timer_wheel.hpp"

namespace wsedge::io {

struct SocketId {
  std::uint32_t idx = UINT32_MAX;
  std::uint32_t gen = 0;
  bool operator==(const SocketId&) const = default;
};

struct ReactorConfig {
  unsigned ring_entries = 4096;
  // Provided receive buffers per core: the most (power of two), and how many to provide at first
  // when consumed incrementally (the ring doubles them when a turn runs it dry).
  unsigned buf_count = 0;  // the most provided buffers; 0: BufferRing's default for the mode
  unsigned buf_initial = BufferRing::kInitialCount;
  unsigned buf_size = 16384;               // bytes per provided buffer
  bool buf_incremental = true;             // consume buffers incrementally where the kernel can
  std::uint32_t max_connections = 262144;  // per core
  std::size_t out_high_water = 1 << 20;    // queued output that pauses reading
  std::size_t out_low_water = 256 << 10;   // ... and resumes it (on_drain)
  unsigned linger_ms = 5000;               // how long a closing socket waits for the peer's FIN
  std::size_t pool_cache_bytes = memory::BufferPool::kDefaultCacheBytes;  // free buffers kept
  int backlog = 4096;
};

struct ReactorCounters {
  Counter accepted;
  Counter connected;
  Counter rejected_full;  // accepted while the connection table was full
  Counter accept_errors;  // EMFILE, ENFILE, ENOMEM...: logged, at most once a second
  Counter closed;
  Counter connections;  // gauge: open or closing right now
  Counter bytes_in;
  Counter bytes_out;
  Counter recv_no_buffers;   // ENOBUFS: the buffer ring ran dry, recv re-armed
  Counter io_errors;         // resets, broken pipes
  Counter peer_half_closes;  // FIN while open: what was received is handled, output flushed
  Counter linger_timeouts;
  Counter recv_pauses;            // reading paused because output backed up
  Counter recv_ring_incremental;  // gauge: 1 when the buffer ring is consumed incrementally
  Counter recv_ring_grown;        // a dry turn doubled the provided buffers
  Counter recv_ring_buffers;      // gauge: buffers provided now
};

inline constexpr MetricInfo<ReactorCounters> kReactorMetrics[] = {
    {"accepted_total", "TCP connections accepted", MetricType::kCounter,
     &ReactorCounters::accepted},
    {"connected_total", "outgoing TCP connections established", MetricType::kCounter,
     &ReactorCounters::connected},
    {"rejected_full_total", "connections refused because the connection table was full",
     MetricType::kCounter, &ReactorCounters::rejected_full},
    {"accept_errors_total", "accept failures (EMFILE, ENFILE, ENOMEM, ...)", MetricType::kCounter,
     &ReactorCounters::accept_errors},
    {"closed_total", "connections whose socket was closed", MetricType::kCounter,
     &ReactorCounters::closed},
    {"connections", "connections open or closing", MetricType::kGauge,
     &ReactorCounters::connections},
    {"received_bytes_total", "bytes received from sockets", MetricType::kCounter,
     &ReactorCounters::bytes_in},
    {"sent_bytes_total", "bytes sent to sockets", MetricType::kCounter,
     &ReactorCounters::bytes_out},
    {"recv_no_buffers_total", "receives that found the provided-buffer ring empty",
     MetricType::kCounter, &ReactorCounters::recv_no_buffers},
    {"io_errors_total", "connections ended by a socket error (reset, broken pipe)",
     MetricType::kCounter, &ReactorCounters::io_errors},
    {"peer_half_closes_total", "peers that sent FIN while the connection was open",
     MetricType::kCounter, &ReactorCounters::peer_half_closes},
    {"linger_timeouts_total", "closing connections dropped when the peer's FIN did not come",
     MetricType::kCounter, &ReactorCounters::linger_timeouts},
    {"recv_pauses_total", "times reading paused because a peer's output backed up",
     MetricType::kCounter, &ReactorCounters::recv_pauses},
    {"recv_ring_incremental",
     "1 when receive buffers are shared by small reads (IOU_PBUF_RING_INC, Linux 6.12), else 0",
     MetricType::kGauge, &ReactorCounters::recv_ring_incremental},
    {"recv_ring_grown_total",
     "times a turn that ran the buffer ring dry doubled its provided buffers (up to --buf-count)",
     MetricType::kCounter, &ReactorCounters::recv_ring_grown},
    {"recv_ring_buffers", "receive buffers provided to the kernel (they only grow until restart)",
     MetricType::kGauge, &ReactorCounters::recv_ring_buffers},
};

class Reactor;

// Work handed to another core. The sender owns the task until its run() is called on the
// target reactor's thread.
struct PostTask {
  void (*run)(PostTask* self, Reactor& on) = nullptr;
  int target_ring_fd = -1;
};

// An operation submitted by code above the reactor: its completions call done() on this core's
// thread. The owner keeps it alive until its last completion (one without IORING_CQE_F_MORE) or
// until the reactor's run() has returned.
struct Completion {
  void (*done)(Completion* self, Reactor& on, const io_uring_cqe& cqe) = nullptr;
};

// Readiness of a file descriptor the reactor does not own, through one multishot poll,
// re-armed whenever the kernel ends it. ready() gets the poll's revents, or -errno when the
// watch failed (it is not re-armed then). Alive from watch() until run() returns or the
// unwatch()ed poll has completed (watching() false).
struct FdWatch : Completion {
  void (*ready)(FdWatch* self, Reactor& on, int revents) = nullptr;
  int fd = -1;
  unsigned events = POLLIN;
  bool wanted = false;  // the reactor's: between watch() and unwatch()
  bool armed = false;   // the reactor's: a poll is in the kernel
  bool watching() const { return wanted || armed; }
};

// An application timer: any number per core, 10 ms resolution, O(1) to set and cancel.
struct TimerId {
  std::uint32_t idx = UINT32_MAX;
  std::uint32_t gen = 0;
  bool operator==(const TimerId&) const = default;
};
using TimerFn = void (*)(void* ctx, Reactor& on);

class Reactor {
 public:
  static constexpr unsigned kTickMs = 10;
  // How long a loop turn handles completions before it sends what they produced.
  static constexpr std::uint64_t kTurnBudgetNs = 200'000;

  Reactor(const ReactorConfig& cfg, unsigned core);
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // Takes ownership of a listening socket and accepts on it (multishot); returns its index,
  // which listener() reports for the connections it accepts.
  unsigned listen(int listen_fd);
  // Starts a connect; on_connect reports the result. `to` must outlive the connect.
  SocketId connect(const Address& to);

  // Every accessor taking a SocketId checks that the id still names the same connection: a
  // handle kept past its connection's end (its slot reused by a newer one) answers as closed.
  bool alive(SocketId id) const { return state_is(id, kOpen); }
  // The id still names a connection that has not been released (open, connecting, closing).
  bool current(SocketId id) const {
    return id.idx < sockets_.size() && sockets_[id.idx].gen == id.gen &&
           sockets_[id.idx].state != kFree;
  }
  // The current id of a slot, for walking all connections (e.g. at shutdown).
  SocketId id_at(std::uint32_t idx) const { return {idx, sockets_[idx].gen}; }
  std::uint32_t slots() const { return static_cast<std::uint32_t>(sockets_.size()); }
  // Open or still connecting: output may be queued.
  bool accepts_output(SocketId id) const {
    return state_is(id, kOpen) || state_is(id, kConnecting);
  }

  // Queues bytes; everything queued in one loop turn leaves in one send at its end.
  void write(SocketId id, const void* data, std::size_t len);
  // Queues `len` bytes produced by fill(dst, offset, n) piecewise, without a staging copy.
  template <class Fill>
  void write_with(SocketId id, std::size_t len, Fill&& fill);
  // Queues a pooled buffer's unconsumed bytes as they are, no copy; takes over the caller's
  // reference and releases it once they are sent.
  void write_buffer(SocketId id, memory::Buffer* b);
  // Queues a pooled buffer's unconsumed bytes without copying and leaves the caller's reference
  // alone: any number of sockets may queue the same buffer (a frame published to many). Each
  // queue holds a view of it (BufferPool::view), with its own link and progress, so its bytes
  // must not change until the last view is sent or dropped. Up to kCopyShared bytes are copied
  // instead.
  void write_shared(SocketId id, memory::Buffer* b);
  std::size_t queued(SocketId id) const { return current(id) ? sockets_[id.idx].queued : 0; }
  bool congested(SocketId id) const { return current(id) && (sockets_[id.idx].flags & kCongested); }

  // Stops reading from a connection until resume_reading(): its bytes wait in the kernel and
  // TCP's window pushes back on the peer (an application whose consumer is full). Independent
  // of the pause the reactor makes by itself while output is backed up: reading resumes only
  // when neither holds it.
  void pause_reading(SocketId id);
  void resume_reading(SocketId id);
  bool reading_paused(SocketId id) const {
    return current(id) && (sockets_[id.idx].flags & kAppPaused);
  }
  // Where the connection comes from (accepted) or goes to (connected); the zero address for a
  // stale id.
  PeerAddress peer(SocketId id) const {
    return current(id) ? sockets_[id.idx].peer : PeerAddress{};
  }
  // Replaces the address peer() reports, for a connection relayed by a proxy that named the
  // client it relays for (the PROXY protocol): logs, per-address limits and applications then
  // see the client, not the proxy. Nothing for a stale id.
  void set_peer(SocketId id, const PeerAddress& p) {
    if (current(id)) sockets_[id.idx].peer = p;
  }
  // The index listen() returned for the socket that accepted it; kNoListener for connect().
  static constexpr std::uint8_t kNoListener = 0xFF;
  unsigned listener(SocketId id) const {
    return current(id) ? sockets_[id.idx].listener : kNoListener;
  }

  // Graceful: flush output, send FIN, wait (at most linger_ms) for the peer's FIN, close.
  void close(SocketId id);
  // Immediate: drop queued output and close.
  void abort(SocketId id);

  // The connection's one timer (handshake, keep-alive, close deadlines): on_timer when due.
  void set_timer(SocketId id, std::uint32_t ms);
  void cancel_timer(SocketId id) {
    // Not on a closing socket: its timer is the linger deadline that bounds it.
    if (accepts_output(id)) wheel_.cancel(id.idx);
  }
  // Keeps a slot from being released (and reused) until unpin, while code above works on a
  // connection that may end under it (an application's upgrade decision, say).
  void pin(SocketId id) { ++sockets_[id.idx].inflight; }
  void unpin(SocketId id) { unref(sockets_[id.idx]); }
  // Application timers: fn(ctx) runs on this thread once, `ms` from now (rounded up to the
  // 10 ms tick). cancel() is false when it already ran or was cancelled.
  TimerId schedule(std::uint32_t ms, TimerFn fn, void* ctx);
  bool cancel(TimerId t);

  // An operation of the caller's: prepare the returned sqe (liburing's prep functions leave
  // its user_data alone); each completion calls c->done on this thread.
  io_uring_sqe* submit(Completion* c);
  // Cancels every operation of `c` still in the kernel; each completes with -ECANCELED.
  void cancel(Completion* c);
  // Starts watching w->fd for w->events (multishot IORING_OP_POLL_ADD, Linux 5.13).
  void watch(FdWatch* w);
  // No ready() call comes after this returns; the poll's cancellation completes later.
  void unwatch(FdWatch* w);

  // Runs task->run on `target`'s thread (IORING_OP_MSG_RING). Call from this reactor's thread.
  void post(Reactor& target, PostTask* task);
  // From any thread: the loop calls on_stop() / on_reload() on its own thread. drain_ms is how
  // long the handler may take to end its connections (spread over it, so clients do not all
  // reconnect in the same second; 0: at once); a later request with a shorter window calls
  // on_stop() again (a second signal while draining: end the rest now).
  void request_stop(std::uint32_t drain_ms = 0);
  void request_reload();
  std::uint32_t drain_ms() const { return drain_ms_.load(std::memory_order_relaxed); }
  // From any thread: now_ms() as of the loop's last tick. The 10 ms tick is always armed, so a
  // value that stops moving means the loop is stuck (the systemd watchdog checks it).
  std::uint64_t heartbeat_ms() const { return heartbeat_ms_.load(std::memory_order_relaxed); }
  // Leave run() once no connection is left.
  void exit_when_idle() { exit_when_idle_ = true; }
  void stop_listening();

  template <class Handler>
  void run(Handler& h);

  unsigned core() const { return core_; }
  std::uint64_t now_ms() const { return now_ms_; }
  // CLOCK_MONOTONIC as read at the start of this turn: one clock read serves every event in it.
  std::uint64_t now_ns() const { return now_ns_; }
  // CLOCK_MONOTONIC now, from any thread.
  static std::uint64_t monotonic_ns();
  memory::BufferPool& pool() { return pool_; }
  const ReactorCounters& counters() const { return counters_; }
  std::uint32_t live() const { return live_; }
  int ring_fd() const { return ring_.fd(); }
  const ReactorConfig& config() const { return cfg_; }

 private:
  enum Op : std::uint8_t {
    kOpAccept = 1,
    kOpRecv,
    kOpSend,
    kOpConnect,
    kOpCloseFd,
    kOpCancel,
    kOpTick,
    kOpWake,
    kOpPost,
    kOpPostSent,
    kOpCompletion,
    kOpSendMsg,  // a gathered send: user_data is its SendOp, which names the slot
  };
  enum State : std::uint8_t { kFree, kConnecting, kOpen, kClosing, kLingering, kDead };
  enum Flag : std::uint8_t {
    kRecvArmed = 1,
    kSendInFlight = 2,
    kDirty = 4,
    kCongested = 8,
    kPeerClosed = 16,
    kRearm = 32,
    kAppPaused = 64,
  };
  static constexpr unsigned kMaxIov = 64;
  // Small enough that the 101 answers of a burst of handshakes cost little; frames larger than
  // this get a buffer of their own size (up to kMaxOutBuffer) instead of a chain.
  static constexpr std::size_t kMinOutBuffer = 1024;
  static constexpr std::size_t kMaxOutBuffer = 1 << 20;
  // write_shared copies frames up to this size instead of linking a view to them.
  static constexpr std::size_t kCopyShared = 256;

  // A send of several queued buffers: the msghdr and iovecs must live until it completes.
  // It travels in the completion's user_data and names its slot itself, so an idle
  // connection's slot holds no pointer to it.
  struct SendOp {
    msghdr msg;
    iovec iov[kMaxIov];
    SendOp* next;
    std::uint32_t idx, gen;
  };

  // Per connection, kept small: idle connections cost this plus the layer above's state.
  struct Socket {
    memory::Buffer* out_head = nullptr;
    memory::Buffer* out_tail = nullptr;
    std::uint32_t queued = 0;
    std::int32_t fd = -1;
    std::uint32_t gen = 0;
    State state = kFree;
    std::uint8_t flags = 0;
    std::uint8_t inflight = 0;  // recv/send/connect completions still to come
    std::uint8_t listener = kNoListener;
    PeerAddress peer;
  };

  struct AppTimer {
    TimerFn fn = nullptr;
    void* ctx = nullptr;
    std::uint32_t gen = 0;
  };

  static std::uint64_t tag(Op op, std::uint32_t idx, std::uint32_t gen) {
    return (std::uint64_t{op} << 56) | (std::uint64_t{gen & 0xFFFFFF} << 32) | idx;
  }
  static std::uint64_t tag_ptr(Op op, const void* p) {
    return (std::uint64_t{op} << 56) | reinterpret_cast<std::uintptr_t>(p);
  }
  static void* untag_ptr(std::uint64_t ud) {
    return reinterpret_cast<void*>(ud & ((std::uint64_t{1} << 56) - 1));
  }
  // The slot a completion belongs to, or null when the slot has since been reused.
  Socket* slot_of(std::uint64_t ud) {
    auto idx = static_cast<std::uint32_t>(ud);
    if (idx >= sockets_.size()) return nullptr;
    Socket& s = sockets_[idx];
    return ((s.gen & 0xFFFFFF) == ((ud >> 32) & 0xFFFFFF) && s.state != kFree) ? &s : nullptr;
  }
  bool state_is(SocketId id, State st) const {
    return id.idx < sockets_.size() && sockets_[id.idx].gen == id.gen &&
           sockets_[id.idx].state == st;
  }
  SocketId id_of(std::uint32_t idx) const { return {idx, sockets_[idx].gen}; }
  std::uint32_t index_of(const Socket& s) const {
    return static_cast<std::uint32_t>(&s - sockets_.data());
  }

  template <class Handler>
  void dispatch(Handler& h, const io_uring_cqe* cqe);
  template <class Handler>
  void on_recv_end(Handler& h, Socket& s, int res);
  template <class Handler>
  void on_send_done(Handler& h, Socket& s, int res);
  template <class Handler>
  void peer_gone(Handler& h, Socket& s, int err);
  template <class Handler>
  void on_accepted(Handler& h, int fd, std::uint32_t listener);
  template <class Handler>
  void on_tick(Handler& h);

  Socket* allocate(int fd, State state);
  void arm_accept(int listen_fd, std::uint32_t index);
  void arm_recv(Socket& s);
  void arm_tick();
  void arm_wake();
  // Reading is wanted unless output is backed up or the application paused it.
  static bool reading_held(const Socket& s) { return s.flags & (kCongested | kAppPaused); }
  void stop_recv(Socket& s);
  void resume_recv(Socket& s);
  void accept_failed(int err);
  static void watch_done(Completion* c, Reactor& on, const io_uring_cqe& cqe);
  void arm_watch(FdWatch* w);
  void mark_dirty(Socket& s);
  // Accounts for `len` more bytes queued: the send goes at the end of the turn, and reading
  // pauses above the high-water mark.
  void queued_more(Socket& s, std::size_t len);
  void flush();
  void start_send(Socket& s);
  void consume_output(Socket& s, std::size_t n);
  void begin_shutdown(Socket& s);
  void finish_close(Socket& s);
  void abort_socket(Socket& s);
  void unref(Socket& s);
  void release(Socket& s);
  void update_clock();
  std::uint32_t ticks() const { return static_cast<std::uint32_t>(now_ms_ / kTickMs); }
  // The first tick at or after `ms` from now: counting from the current tick instead would fire
  // up to one tick early.
  std::uint32_t deadline_tick(std::uint32_t ms) const {
    return static_cast<std::uint32_t>((now_ms_ + ms + kTickMs - 1) / kTickMs);
  }
  memory::Buffer* out_space(Socket& s, std::size_t want);

  ReactorConfig cfg_;
  unsigned core_;
  Ring ring_;
  BufferRing bufs_;
  memory::BufferPool pool_;
  TimerWheel wheel_;      // one deadline per connection slot
  TimerWheel app_wheel_;  // application timers, by index into timers_
  std::vector<AppTimer> timers_;
  std::vector<std::uint32_t> free_timers_;
  std::vector<Socket> sockets_;
  std::vector<std::uint32_t> free_;
  std::vector<std::uint32_t> dirty_;
  std::vector<std::uint32_t> rearm_;
  std::vector<int> listeners_;
  SendOp* free_send_ops_ = nullptr;
  std::vector<std::unique_ptr<SendOp>> send_ops_;  // owns every SendOp, free or in flight
  ReactorCounters counters_;
  std::uint64_t now_ns_ = 0;
  std::uint64_t now_ms_ = 0;
  std::uint32_t live_ = 0;
  int wake_fd_ = -1;
  std::uint64_t wake_buf_ = 0;
  __kernel_timespec tick_ts_{};
  std::atomic<bool> stop_requested_{false};
  std::atomic<std::uint32_t> drain_ms_{0};
  std::atomic<std::uint64_t> heartbeat_ms_{0};
  std::atomic<bool> reload_requested_{false};
  bool stopping_ = false;
  bool exit_when_idle_ = false;
  bool accept_rearm_ = false;
};

template <class Fill>
void Reactor::write_with(SocketId id, std::size_t len, Fill&& fill) {
  if (!accepts_output(id)) return;
  Socket& s = sockets_[id.idx];
  std::size_t done = 0;
  while (done < len) {
    memory::Buffer* b = out_space(s, len - done);
    std::size_t n = std::min(b->room(), len - done);
    fill(b->data() + b->len, done, n);
    b->len += static_cast<std::uint32_t>(n);
    done += n;
  }
  queued_more(s, len);
}

template <class Handler>
void Reactor::run(Handler& h) {
  arm_tick();
  arm_wake();
  update_clock();
  while (!(exit_when_idle_ && live_ == 0)) {
    h.on_flush();
    flush();
    int rc = io_uring_submit_and_wait(ring_.raw(), 1);
    if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EBUSY)
      throw std::runtime_error("io_uring_submit_and_wait: " + std::to_string(rc));
    update_clock();
    std::uint64_t turn_start = now_ns_;
    unsigned head;
    unsigned n = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(ring_.raw(), head, cqe) {
      ++n;
      dispatch(h, cqe);
      if ((n & 3) == 0 && monotonic_ns() - turn_start > kTurnBudgetNs) {
        // A long turn (a TLS handshake costs ~0.5 ms) sends what it has so far rather than keep
        // every peer in the batch waiting for its end, idle.
        h.on_flush();
        flush();
        io_uring_submit(ring_.raw());
        update_clock();
        turn_start = now_ns_;
      }
    }
    io_uring_cq_advance(ring_.raw(), n);
    // Recvs waiting to re-arm found the ring dry: the load needs more buffers than are provided.
    // Grown before they re-arm, they read into the new ones at once.
    if (!rearm_.empty() && bufs_.grow()) {
      ++counters_.recv_ring_grown;
      counters_.recv_ring_buffers.set(bufs_.provided());
    }
    bufs_.commit();
    // Buffers are back: connections that found the ring empty may read again.
    for (std::uint32_t idx : rearm_) {
      Socket& s = sockets_[idx];
      // A slot released and reused since (allocate clears flags) no longer asks: a connecting
      // socket must not get a recv.
      if (!(s.flags & kRearm)) continue;
      s.flags &= static_cast<std::uint8_t>(~kRearm);
      if (s.state != kFree && s.state != kDead && !(s.flags & kRecvArmed) && !reading_held(s))
        arm_recv(s);
    }
    rearm_.clear();
  }
  // The last turn's closes (and the application's own operations) must still reach the kernel:
  // left in the submission queue they die with the ring, leaking their fds, and a peer waits
  // for a FIN that never comes.
  h.on_flush();
  flush();
  io_uring_submit(ring_.raw());
}

template <class Handler>
void Reactor::dispatch(Handler& h, const io_uring_cqe* cqe) {
  std::uint64_t ud = cqe->user_data;
  int res = cqe->res;
  unsigned flags = cqe->flags;
  switch (static_cast<Op>(ud >> 56)) {
    case kOpRecv: {
      Socket* s = slot_of(ud);
      if (flags & IORING_CQE_F_BUFFER) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        BufferRing::Slice slice =
            bufs_.consume(bid, res > 0 ? static_cast<unsigned>(res) : 0, flags);
        if (res > 0 && s) {
          counters_.bytes_in += static_cast<unsigned>(res);
          // Bytes reaching a closing socket are read and dropped (lingering close).
          if (s->state == kOpen)
            h.on_data(id_of(index_of(*s)), slice.data, static_cast<std::size_t>(res));
        }
        // on_data has used or copied the bytes; a buffer the kernel still fills (incremental)
        // stays in the ring.
        if (slice.last) bufs_.recycle(bid);
      }
      if (s && !(flags & IORING_CQE_F_MORE)) on_recv_end(h, *s, res);
      break;
    }
    case kOpSend:
      if (Socket* s = slot_of(ud)) on_send_done(h, *s, res);
      break;
    case kOpSendMsg: {
      auto* op = static_cast<SendOp*>(untag_ptr(ud));
      op->next = free_send_ops_;
      free_send_ops_ = op;
      if (Socket* s = slot_of(tag(kOpSendMsg, op->idx, op->gen))) on_send_done(h, *s, res);
      break;
    }
    case kOpAccept:
      if (res >= 0)
        on_accepted(h, res, static_cast<std::uint32_t>(ud));
      else if (res != -ECANCELED)
        accept_failed(-res);
      if (!(flags & IORING_CQE_F_MORE) && !stopping_) {
        // Re-arm now, or on the next tick after an error such as EMFILE, to avoid spinning.
        if (res >= 0)
          arm_accept(listeners_[static_cast<std::uint32_t>(ud)], static_cast<std::uint32_t>(ud));
        else
          accept_rearm_ = true;
      }
      break;
    case kOpConnect:
      if (Socket* s = slot_of(ud)) {
        SocketId id = id_of(index_of(*s));
        if (res == 0 && s->state == kConnecting) {
          s->state = kOpen;
          ++counters_.connected;
          arm_recv(*s);
          mark_dirty(*s);  // output queued while connecting (the upgrade request) can go now
          unref(*s);
          h.on_connect(id, 0);
        } else {
          bool reported = s->state == kConnecting;
          if (reported) abort_socket(*s);
          unref(*s);
          if (reported) h.on_connect(id, res < 0 ? -res : ECONNABORTED);
        }
      }
      break;
    case kOpTick:
      heartbeat_ms_.store(now_ms_, std::memory_order_relaxed);
      on_tick(h);
      arm_tick();
      break;
    case kOpWake:
      if (reload_requested_.exchange(false)) h.on_reload();
      if (stop_requested_.exchange(false)) {
        stopping_ = true;
        h.on_stop();
      }
      arm_wake();
      break;
    case kOpPost: {
      auto* t = static_cast<PostTask*>(untag_ptr(ud));
      t->run(t, *this);
      break;
    }
    case kOpPostSent:
      if (res < 0) {
        // The target's completion queue could not take it: try again, never drop it.
        auto* t = static_cast<PostTask*>(untag_ptr(ud));
        io_uring_sqe* sqe = ring_.sqe();
        io_uring_prep_msg_ring(sqe, t->target_ring_fd, 0, tag_ptr(kOpPost, t), 0);
        sqe->user_data = tag_ptr(kOpPostSent, t);
      }
      break;
    case kOpCompletion: {
      auto* c = static_cast<Completion*>(untag_ptr(ud));
      c->done(c, *this, *cqe);
      break;
    }
    case kOpCloseFd:
    case kOpCancel:
      break;
  }
}

template <class Handler>
void Reactor::peer_gone(Handler& h, Socket& s, int err) {
  // A failed send and a failed recv of the same connection both land here: once is enough.
  if (s.state == kDead) return;
  s.flags |= kPeerClosed;
  if (err)
    ++counters_.io_errors;
  else if (s.state == kOpen)
    ++counters_.peer_half_closes;
  if (s.state == kOpen) {
    h.on_peer_closed(id_of(index_of(s)), err);
    if (s.state == kOpen) abort_socket(s);
  } else if (s.state == kLingering || err) {
    // Lingering: the peer's FIN is what we waited for. Closing with an error: nothing more
    // can be delivered.
    if (s.state == kLingering && !err)
      finish_close(s);
    else
      abort_socket(s);
  }
}

template <class Handler>
void Reactor::on_recv_end(Handler& h, Socket& s, int res) {
  s.flags &= static_cast<std::uint8_t>(~kRecvArmed);
  if (res == -ENOBUFS) {
    ++counters_.recv_no_buffers;
    if (!(s.flags & kRearm)) {
      s.flags |= kRearm;
      rearm_.push_back(index_of(s));
    }
  } else if (res == 0 || (res < 0 && res != -ECANCELED)) {
    peer_gone(h, s, -res);
  } else if (s.state != kDead && !reading_held(s)) {
    // Cancelled by a pause that has since been lifted (output drained before this arrived),
    // or ended by the kernel on its own (e.g. CQ overflow): keep reading.
    arm_recv(s);
  }
  unref(s);
}

template <class Handler>
void Reactor::on_send_done(Handler& h, Socket& s, int res) {
  s.flags &= static_cast<std::uint8_t>(~kSendInFlight);
  if (res > 0) {
    counters_.bytes_out += static_cast<unsigned>(res);
    consume_output(s, static_cast<std::size_t>(res));
  }
  if (res < 0) {
    if (s.state != kDead) peer_gone(h, s, -res);
  } else if (s.state != kDead) {
    if (s.out_head)
      mark_dirty(s);  // a partial send: the rest goes at the end of this turn
    else if (s.state == kClosing)
      begin_shutdown(s);
    if ((s.flags & kCongested) && s.queued <= cfg_.out_low_water) {
      s.flags &= static_cast<std::uint8_t>(~kCongested);
      if (s.state == kOpen) {
        resume_recv(s);
        h.on_drain(id_of(index_of(s)));
      }
    }
  }
  unref(s);
}

template <class Handler>
void Reactor::on_accepted(Handler& h, int fd, std::uint32_t listener) {
  Socket* s = allocate(fd, kOpen);
  if (!s) {
    ::close(fd);
    ++counters_.rejected_full;
    return;
  }
  ++counters_.accepted;
  s->listener = static_cast<std::uint8_t>(listener);
  // Multishot accept cannot return each peer's address; one getpeername per connection can.
  s->peer = PeerAddress::of_socket(fd);
  // Accepted sockets inherit TCP_NODELAY from the listener on Linux; set it anyway so a
  // listener configured elsewhere cannot bring Nagle back.
  set_nodelay(fd);
  arm_recv(*s);
  h.on_accept(id_of(index_of(*s)));
}

template <class Handler>
void Reactor::on_tick(Handler& h) {
  if (accept_rearm_ && !stopping_) {
    accept_rearm_ = false;
    for (std::uint32_t i = 0; i < listeners_.size(); ++i) arm_accept(listeners_[i], i);
  }
  wheel_.advance(ticks(), [&](std::uint32_t idx) {
    Socket& s = sockets_[idx];
    if (s.state == kOpen) {
      h.on_timer(id_of(idx));
    } else if (s.state == kConnecting) {
      // The layer above's deadline (its handshake timer) bounds the connect too, instead of
      // the kernel's SYN retries (about two minutes to a black hole).
      SocketId id = id_of(idx);
      abort_socket(s);
      h.on_connect(id, ETIMEDOUT);
    } else if (s.state == kClosing || s.state == kLingering) {
      ++counters_.linger_timeouts;
      abort_socket(s);
    }
  });
  app_wheel_.advance(ticks(), [&](std::uint32_t idx) {
    AppTimer t = timers_[idx];
    ++timers_[idx].gen;  // fired: its TimerId no longer cancels anything
    free_timers_.push_back(idx);
    t.fn(t.ctx, *this);
  });
}

}  // namespace wsedge::io
