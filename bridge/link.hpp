#pragma once
// One core's link to one backend endpoint (docs/BRIDGE-PROTOCOL.md §1, §5, §7): a DEALER that
// never blocks, the hello/welcome session, and the window of events sent and not yet counted
// by the backend, which is what makes a backend's crash lose nothing a client sent: those
// events are sent again, in order, once a backend answers HELLO again.
#include <zmq.hpp>

#include <bit>
#include <cstdint>
#include <string>
#include <vector>

#include "bridge/counters.hpp"
#include "bridge/options.hpp"
#include "bridge/protocol.hpp"
#include "engine/io/reactor.hpp"

namespace wsedge::bridge {

// Frame 0 of a message (§3).
inline zmq::message_t header_frame(Type type, std::uint16_t flags, const ConnId& id) {
  auto h = encode_header({kVersion, type, flags, id});
  return zmq::message_t(h.data(), h.size());
}

// A FIFO that reuses its storage: events come and go once per client message, and a deque
// would allocate and free a block every few of them.
template <class T>
class Ring {
 public:
  explicit Ring(std::size_t capacity = 0) : buf_(std::bit_ceil(capacity)) {}
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](std::size_t i) { return buf_[(head_ + i) & (buf_.size() - 1)]; }
  T& front() { return buf_[head_]; }
  void push_back(T&& v) {
    if (size_ == buf_.size()) grow();
    buf_[(head_ + size_) & (buf_.size() - 1)] = std::move(v);
    ++size_;
  }
  void pop_front() {
    buf_[head_] = T{};
    head_ = (head_ + 1) & (buf_.size() - 1);
    --size_;
  }

 private:
  void grow() {
    std::vector<T> bigger(buf_.empty() ? 16 : buf_.size() * 2);  // a power of two
    for (std::size_t i = 0; i < size_; ++i) bigger[i] = std::move((*this)[i]);
    buf_ = std::move(bigger);
    head_ = 0;
  }
  std::vector<T> buf_;  // a power of two long
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

// An OPEN, MESSAGE or CLOSE on its way to a backend: kept until the backend counts it.
struct Event {
  io::SocketId conn;
  Type type = Type::kMessage;
  // The connection's route: where its events go when their link fails after it closed (a
  // backend may serve several routes; another of its routes' backends must not hear them).
  std::uint16_t route = 0;
  zmq::message_t header;
  zmq::message_t meta;
  zmq::message_t payload;    // MESSAGE only
  bool sent_before = false;  // going again after a link broke
};

// Frames of one multipart message, received or to send.
struct Frames {
  static constexpr int kMax = 4;
  zmq::message_t f[kMax];
  int n = 0;
};

class Link {
 public:
  // Room for what a backend holds uncounted in steady state (it counts every 64 events) and
  // what is in flight meanwhile, so the window does not grow during traffic: 26 KiB per link.
  static constexpr std::size_t kWindowStart = 128;
  enum class State : std::uint8_t {
    kDown,       // not connected
    kConnected,  // HELLO sent, waiting for WELCOME
    kUp,         // WELCOME received: events flow
  };

  Link(zmq::context_t& ctx, const Options& opts, const std::string& endpoint,
       const std::string& routing_id, unsigned core, unsigned index, BridgeCounters& counters);
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  zmq::socket_t& socket() { return sock_; }
  zmq::socket_t& monitor() { return monitor_; }
  const std::string& endpoint() const { return endpoint_; }
  State state() const { return state_; }
  // 1 while up (WELCOME received), else 0: a gauge the metrics exporter reads from its thread.
  const Counter& up_gauge() const { return up_gauge_; }
  bool inproc() const { return inproc_; }

  // Takes an event; it leaves with the turn's others at flush(). False when the client that
  // produced it should stop reading for now (backend down, full, or the window spent); the
  // event itself is kept either way.
  bool push(Event&& e);
  // Sends what waits (after EAGAIN, after WELCOME). True when nothing waits any more.
  bool flush();
  // Whether a client routed here may keep reading.
  bool accepting() const { return state_ == State::kUp && !blocked_ && !window_full(); }

  // A message outside the window (HELLO, BEAT, ACK, ERROR, SNAPSHOT): sent now or dropped
  // (false) when the backend is full.
  bool send_control(Frames& m);
  // The connection is up (or, for inproc, exists): say HELLO.
  void connected(const std::string& node_name, const ConnId& core_id, unsigned cores);
  // Sends a HELLO that met a full pipe (see connected); true when it went now.
  bool send_hello();
  bool hello_pending() const { return hello_pending_; }
  // WELCOME: everything not yet counted goes again. True when the backend is a new instance
  // (it knows none of this core's connections).
  bool welcomed(std::uint64_t instance);
  // RECEIVED: the backend has counted `count` events since its WELCOME.
  void counted(std::uint64_t count);
  // The connection broke: what was in flight is sent again after the next WELCOME.
  void down();
  // Shutting down: what is queued may take this long to leave before the socket closes.
  void linger(int ms) { sock_.set(zmq::sockopt::linger, ms); }
  // Puts events at the front, in order (a restarted backend hears resumed OPENs first).
  void prepend(std::vector<Event>& first);
  // Takes every event out (failover moves them to other links).
  Ring<Event> take_all();

  // Clients paused because of this link, resumed when it accepts again.
  std::vector<io::SocketId>& paused() { return paused_; }
  Ring<Event>& window() { return window_; }

  // Receives one multipart message without blocking: frames in `m`; false when none is ready.
  static bool receive(zmq::socket_t& s, Frames& m, bool& oversized);

 private:
  bool window_full() const {
    return window_.size() >= window_events_ || window_bytes_ >= window_bytes_cap_;
  }
  bool send_event(Event& e);
  // Into the window without sending.
  void keep(Event&& e) {
    window_bytes_ += e.payload.size();
    window_.push_back(std::move(e));
  }

  zmq::socket_t sock_;
  zmq::socket_t monitor_;
  std::string endpoint_;
  bool inproc_;
  State state_ = State::kDown;
  Counter up_gauge_;
  bool blocked_ = false;  // the last send met EAGAIN
  std::uint64_t instance_ = 0;
  zmq::message_t hello_[2];  // the last HELLO, kept until it has gone
  bool hello_pending_ = false;
  bool known_instance_ = false;
  Ring<Event> window_;         // sent or waiting, not yet counted, in order
  std::size_t sent_ = 0;       // how many of window_'s front went out in this session
  std::uint64_t counted_ = 0;  // the backend's count in this session
  std::size_t window_bytes_ = 0;
  std::uint32_t window_events_;
  std::size_t window_bytes_cap_;
  std::vector<io::SocketId> paused_;
  BridgeCounters& counters_;
};

// Options every bridge socket takes: bounded queues, LINGER 0, ZMTP heartbeats, and a cap on a
// peer's message size.
void set_common(zmq::socket_t& s, const Options& o);

// Sends a multipart message without blocking; false (nothing sent) when the queue is full.
bool send_frames(zmq::socket_t& s, zmq::message_t* frames, int n);

}  // namespace wsedge::bridge
