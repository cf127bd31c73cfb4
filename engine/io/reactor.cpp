#include "reactor.hpp"

#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <system_error>

#include "engine/log.hpp"

namespace wsedge::io {

Reactor::Reactor(const ReactorConfig& cfg, unsigned core)
    : cfg_(cfg),
      core_(core),
      ring_(cfg.ring_entries),
      bufs_(ring_.raw(), cfg.buf_count, cfg.buf_size, 0, cfg.buf_incremental, cfg.buf_initial),
      pool_(cfg.pool_cache_bytes) {
  // Reserve the whole table up front: addresses stay stable, and untouched pages cost nothing.
  sockets_.reserve(cfg.max_connections);
  counters_.recv_ring_incremental.set(bufs_.incremental() ? 1 : 0);
  counters_.recv_ring_buffers.set(bufs_.provided());
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  tick_ts_.tv_nsec = static_cast<long>(kTickMs) * 1000000;
  update_clock();
  // The wheels count ticks from the clock: both start at "now".
  wheel_.start(ticks());
  app_wheel_.start(ticks());
}

Reactor::~Reactor() {
  for (Socket& s : sockets_) {
    if (s.fd >= 0) ::close(s.fd);
    while (s.out_head) {
      memory::Buffer* n = s.out_head->next;
      pool_.release(s.out_head);
      s.out_head = n;
    }
  }
  for (int fd : listeners_) ::close(fd);
  ::close(wake_fd_);
}

std::uint64_t Reactor::monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000 +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

void Reactor::update_clock() {
  now_ns_ = monotonic_ns();
  now_ms_ = now_ns_ / 1'000'000;
}

unsigned Reactor::listen(int listen_fd) {
  // The index travels in a Socket's one-byte listener field.
  if (listeners_.size() >= kNoListener) throw std::length_error("too many listeners on one core");
  listeners_.push_back(listen_fd);
  auto index = static_cast<std::uint32_t>(listeners_.size() - 1);
  arm_accept(listen_fd, index);
  return index;
}

void Reactor::accept_failed(int err) {
  ++counters_.accept_errors;
  // EMFILE and friends repeat for every waiting connection: one line a second is enough to
  // see it, and the count says how many.
  LOG_WARN_LIMITED(1, "accept_failed", log::kv("error", std::strerror(err)),
                   log::kv("accept_errors", counters_.accept_errors.get()));
}

void Reactor::stop_listening() {
  stopping_ = true;
  for (std::uint32_t i = 0; i < listeners_.size(); ++i) {
    io_uring_sqe* sqe = ring_.sqe();
    io_uring_prep_cancel64(sqe, tag(kOpAccept, i, 0), 0);
    sqe->user_data = tag(kOpCancel, 0, 0);
    ::shutdown(listeners_[i], SHUT_RDWR);
  }
}

void Reactor::arm_accept(int listen_fd, std::uint32_t index) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_multishot_accept(sqe, listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  sqe->user_data = tag(kOpAccept, index, 0);
}

void Reactor::arm_tick() {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_timeout(sqe, &tick_ts_, 0, 0);
  sqe->user_data = tag(kOpTick, 0, 0);
}

void Reactor::arm_wake() {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_read(sqe, wake_fd_, &wake_buf_, sizeof wake_buf_, 0);
  sqe->user_data = tag(kOpWake, 0, 0);
}

void Reactor::request_stop(std::uint32_t drain_ms) {
  drain_ms_.store(drain_ms);
  stop_requested_.store(true);
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

void Reactor::request_reload() {
  reload_requested_.store(true);
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

void Reactor::post(Reactor& target, PostTask* task) {
  task->target_ring_fd = target.ring_fd();
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_msg_ring(sqe, task->target_ring_fd, 0, tag_ptr(kOpPost, task), 0);
  sqe->user_data = tag_ptr(kOpPostSent, task);
}

Reactor::Socket* Reactor::allocate(int fd, State state) {
  std::uint32_t idx;
  if (!free_.empty()) {
    idx = free_.back();
    free_.pop_back();
  } else if (sockets_.size() < cfg_.max_connections) {
    idx = static_cast<std::uint32_t>(sockets_.size());
    sockets_.emplace_back();
    wheel_.grow(idx + 1);
  } else {
    return nullptr;
  }
  Socket& s = sockets_[idx];
  s.fd = fd;
  s.state = state;
  s.flags = 0;
  s.inflight = 0;
  s.queued = 0;
  s.listener = kNoListener;
  s.peer = {};
  ++live_;
  ++counters_.connections;
  return &s;
}

SocketId Reactor::connect(const Address& to) {
  int fd = ::socket(to.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  Socket* s = allocate(fd, kConnecting);
  if (!s) {
    ::close(fd);
    throw std::runtime_error("connection table full");
  }
  set_nodelay(fd);
  s->peer = PeerAddress::from(to.sa());
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_connect(sqe, fd, to.sa(), to.len);
  std::uint32_t idx = index_of(*s);
  sqe->user_data = tag(kOpConnect, idx, s->gen);
  ++s->inflight;
  return id_of(idx);
}

void Reactor::arm_recv(Socket& s) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_recv_multishot(sqe, s.fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = bufs_.group();
  sqe->user_data = tag(kOpRecv, index_of(s), s.gen);
  s.flags |= kRecvArmed;
  ++s.inflight;
}

void Reactor::stop_recv(Socket& s) {
  if (!(s.flags & kRecvArmed)) return;
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_cancel64(sqe, tag(kOpRecv, index_of(s), s.gen), 0);
  sqe->user_data = tag(kOpCancel, index_of(s), s.gen);
}

void Reactor::resume_recv(Socket& s) {
  if (!(s.flags & kRecvArmed) && !reading_held(s) && s.state != kDead) arm_recv(s);
}

void Reactor::pause_reading(SocketId id) {
  if (!alive(id)) return;
  Socket& s = sockets_[id.idx];
  s.flags |= kAppPaused;
  stop_recv(s);
}

void Reactor::resume_reading(SocketId id) {
  if (!current(id)) return;
  Socket& s = sockets_[id.idx];
  s.flags &= static_cast<std::uint8_t>(~kAppPaused);
  if (s.state == kOpen) resume_recv(s);
}

void Reactor::mark_dirty(Socket& s) {
  if (s.flags & kDirty) return;
  s.flags |= kDirty;
  dirty_.push_back(index_of(s));
}

void Reactor::queued_more(Socket& s, std::size_t len) {
  s.queued += static_cast<std::uint32_t>(len);
  mark_dirty(s);
  if (s.queued > cfg_.out_high_water && !(s.flags & kCongested)) {
    s.flags |= kCongested;
    ++counters_.recv_pauses;
    stop_recv(s);
  }
}

void Reactor::write_buffer(SocketId id, memory::Buffer* b) {
  if (!accepts_output(id)) {
    pool_.release(b);
    return;
  }
  Socket& s = sockets_[id.idx];
  b->next = nullptr;
  if (s.out_tail)
    s.out_tail->next = b;
  else
    s.out_head = b;
  s.out_tail = b;
  queued_more(s, b->len - b->off);
}

void Reactor::write_shared(SocketId id, memory::Buffer* b) {
  if (!accepts_output(id)) return;
  std::size_t len = b->len - b->off;
  if (len <= kCopyShared) {
    // A view is a 152-byte pooled node and an iovec of its own (64 per send): a small frame
    // costs less copied, and a turn's small frames then leave as one contiguous piece.
    write(id, b->bytes() + b->off, len);
    return;
  }
  write_buffer(id, pool_.view(b));
}

memory::Buffer* Reactor::out_space(Socket& s, std::size_t want) {
  memory::Buffer* t = s.out_tail;
  if (t && t->room() > 0) return t;
  memory::Buffer* b = pool_.acquire(std::clamp(want, kMinOutBuffer, kMaxOutBuffer));
  if (t)
    t->next = b;
  else
    s.out_head = b;
  s.out_tail = b;
  return b;
}

void Reactor::write(SocketId id, const void* data, std::size_t len) {
  auto* src = static_cast<const std::byte*>(data);
  write_with(id, len, [src](std::byte* dst, std::size_t off, std::size_t n) {
    std::memcpy(dst, src + off, n);
  });
}

void Reactor::flush() {
  for (std::uint32_t idx : dirty_) {
    Socket& s = sockets_[idx];
    s.flags &= static_cast<std::uint8_t>(~kDirty);
    if (s.state == kFree || s.state == kDead || s.state == kConnecting || (s.flags & kSendInFlight))
      continue;
    start_send(s);
  }
  dirty_.clear();
}

void Reactor::start_send(Socket& s) {
  memory::Buffer* b = s.out_head;
  if (!b) {
    if (s.state == kClosing) begin_shutdown(s);
    return;
  }
  io_uring_sqe* sqe = ring_.sqe();
  if (!b->next) {
    io_uring_prep_send(sqe, s.fd, b->bytes() + b->off, b->len - b->off, MSG_NOSIGNAL);
    sqe->user_data = tag(kOpSend, index_of(s), s.gen);
  } else {
    SendOp* op = free_send_ops_;
    if (op)
      free_send_ops_ = op->next;
    else
      op = send_ops_.emplace_back(std::make_unique<SendOp>()).get();
    unsigned n = 0;
    for (; b && n < kMaxIov; b = b->next, ++n) op->iov[n] = {b->bytes() + b->off, b->len - b->off};
    op->msg = {};
    op->msg.msg_iov = op->iov;
    op->msg.msg_iovlen = n;
    op->idx = index_of(s);
    op->gen = s.gen;
    io_uring_prep_sendmsg(sqe, s.fd, &op->msg, MSG_NOSIGNAL);
    sqe->user_data = tag_ptr(kOpSendMsg, op);
  }
  s.flags |= kSendInFlight;
  ++s.inflight;
}

void Reactor::consume_output(Socket& s, std::size_t n) {
  s.queued -= static_cast<std::uint32_t>(n);
  while (n > 0) {
    memory::Buffer* b = s.out_head;
    std::size_t avail = b->len - b->off;
    if (n < avail) {
      b->off += static_cast<std::uint32_t>(n);
      return;
    }
    n -= avail;
    s.out_head = b->next;
    pool_.release(b);
  }
  // The tail may be reused for the next frame once fully sent.
  if (!s.out_head) s.out_tail = nullptr;
}

void Reactor::close(SocketId id) {
  if (!alive(id)) return;
  Socket& s = sockets_[id.idx];
  s.state = kClosing;
  wheel_.schedule(id.idx, deadline_tick(cfg_.linger_ms));
  mark_dirty(s);
}

void Reactor::abort(SocketId id) {
  if (id.idx >= sockets_.size() || sockets_[id.idx].gen != id.gen) return;
  Socket& s = sockets_[id.idx];
  if (s.state != kFree && s.state != kDead) abort_socket(s);
}

void Reactor::begin_shutdown(Socket& s) {
  if (s.flags & kPeerClosed) {
    finish_close(s);
    return;
  }
  // A plain syscall, not IORING_OP_SHUTDOWN: that op always runs in an io-wq worker, which
  // looks the fd number up only when it gets to it; by then our close may have run and the
  // number belong to a new connection (the fd table is shared by all cores), which would lose
  // its write side. shutdown() on a TCP socket never blocks.
  ::shutdown(s.fd, SHUT_WR);
  s.state = kLingering;
  // Whatever held reading back, the peer's FIN must now be read.
  s.flags &= static_cast<std::uint8_t>(~(kCongested | kAppPaused));
  if (!(s.flags & kRecvArmed)) arm_recv(s);  // the peer's FIN arrives as a read of 0
}

void Reactor::finish_close(Socket& s) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_close(sqe, s.fd);
  sqe->user_data = tag(kOpCloseFd, index_of(s), s.gen);
  s.fd = -1;
  s.state = kDead;
  wheel_.cancel(index_of(s));
  if (s.inflight == 0) release(s);
}

void Reactor::abort_socket(Socket& s) {
  // SHUT_RDWR ends a pending multishot recv (it holds its own file reference, so close alone
  // would not). Synchronous for the reason given in begin_shutdown.
  ::shutdown(s.fd, SHUT_RDWR);
  finish_close(s);
}

void Reactor::unref(Socket& s) {
  --s.inflight;
  if (s.state == kDead && s.inflight == 0) release(s);
}

void Reactor::release(Socket& s) {
  while (s.out_head) {
    memory::Buffer* n = s.out_head->next;
    pool_.release(s.out_head);
    s.out_head = n;
  }
  s.out_tail = nullptr;
  s.queued = 0;
  s.state = kFree;
  s.flags = 0;
  ++s.gen;
  ++counters_.closed;
  --counters_.connections;
  --live_;
  free_.push_back(index_of(s));
}

void Reactor::set_timer(SocketId id, std::uint32_t ms) {
  if (!accepts_output(id)) return;
  wheel_.schedule(id.idx, deadline_tick(ms));
}

TimerId Reactor::schedule(std::uint32_t ms, TimerFn fn, void* ctx) {
  std::uint32_t idx;
  if (!free_timers_.empty()) {
    idx = free_timers_.back();
    free_timers_.pop_back();
  } else {
    idx = static_cast<std::uint32_t>(timers_.size());
    timers_.emplace_back();
    // The free list never holds more than every timer: sized with them, a timer that fires
    // (or is cancelled) never allocates, however late in a steady state that first happens.
    free_timers_.reserve(timers_.capacity());
    app_wheel_.grow(idx + 1);
  }
  AppTimer& t = timers_[idx];
  t.fn = fn;
  t.ctx = ctx;
  app_wheel_.schedule(idx, deadline_tick(ms));
  return {idx, t.gen};
}

bool Reactor::cancel(TimerId id) {
  if (id.idx >= timers_.size() || timers_[id.idx].gen != id.gen) return false;
  app_wheel_.cancel(id.idx);
  ++timers_[id.idx].gen;
  free_timers_.push_back(id.idx);
  return true;
}

io_uring_sqe* Reactor::submit(Completion* c) {
  io_uring_sqe* sqe = ring_.sqe();
  sqe->user_data = tag_ptr(kOpCompletion, c);
  return sqe;
}

void Reactor::cancel(Completion* c) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_cancel64(sqe, tag_ptr(kOpCompletion, c), IORING_ASYNC_CANCEL_ALL);
  sqe->user_data = tag(kOpCancel, 0, 0);
}

void Reactor::arm_watch(FdWatch* w) {
  io_uring_sqe* sqe = submit(w);
  io_uring_prep_poll_multishot(sqe, w->fd, w->events);
  w->armed = true;
}

void Reactor::watch(FdWatch* w) {
  w->done = watch_done;
  w->wanted = true;
  if (!w->armed) arm_watch(w);
}

void Reactor::unwatch(FdWatch* w) {
  if (!w->wanted) return;
  w->wanted = false;
  if (w->armed) cancel(w);
}

void Reactor::watch_done(Completion* c, Reactor& on, const io_uring_cqe& cqe) {
  auto* w = static_cast<FdWatch*>(c);
  bool last = !(cqe.flags & IORING_CQE_F_MORE);
  if (last) w->armed = false;
  if (!w->wanted) return;
  if (cqe.res < 0) {
    // The poll failed (a closed fd, say); re-arming would fail the same way at once.
    if (cqe.res == -ECANCELED) {
      if (last) on.arm_watch(w);  // cancelled by an unwatch that a watch() has since undone
      return;
    }
    w->wanted = false;
    w->ready(w, on, cqe.res);
    return;
  }
  // The kernel ends a multishot poll on its own at times (a full completion queue): the
  // watch goes on regardless. Armed again before ready(), which may unwatch.
  if (last) on.arm_watch(w);
  w->ready(w, on, cqe.res);
}

}  // namespace wsedge::io
