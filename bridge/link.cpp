#include "link.hpp"

#include <zmq.h>

#include "engine/log.hpp"

namespace wsedge::bridge {

bool send_frames(zmq::socket_t& s, zmq::message_t* frames, int n) {
  for (int i = 0; i < n; ++i) {
    int flags = ZMQ_DONTWAIT | (i + 1 < n ? ZMQ_SNDMORE : 0);
    // Only the first part can meet a full queue: libzmq counts whole messages against the
    // high-water mark and keeps a message's parts together.
    if (zmq_msg_send(frames[i].handle(), s.handle(), flags) < 0) {
      if (zmq_errno() == EAGAIN && i == 0) return false;
      throw zmq::error_t();
    }
  }
  return true;
}

bool Link::receive(zmq::socket_t& s, Frames& m, bool& oversized) {
  m.n = 0;
  oversized = false;
  for (;;) {
    zmq::message_t scratch;
    zmq::message_t& into = m.n < Frames::kMax ? m.f[m.n] : scratch;
    if (zmq_msg_recv(into.handle(), s.handle(), ZMQ_DONTWAIT) < 0) {
      if (zmq_errno() == EAGAIN && m.n == 0) return false;
      throw zmq::error_t();
    }
    if (m.n < Frames::kMax)
      ++m.n;
    else
      oversized = true;  // the rest of the message is read and dropped
    if (!into.more()) return true;
  }
}

void set_common(zmq::socket_t& s, const Options& o) {
  s.set(zmq::sockopt::sndhwm, o.hwm);
  s.set(zmq::sockopt::rcvhwm, o.hwm);
  s.set(zmq::sockopt::linger, 0);
  // A backend that dies without a FIN (power, partition) is noticed by ZMTP heartbeats.
  s.set(zmq::sockopt::heartbeat_ivl, static_cast<int>(o.heartbeat_ms));
  s.set(zmq::sockopt::heartbeat_timeout, static_cast<int>(3 * o.heartbeat_ms));
  s.set(zmq::sockopt::heartbeat_ttl, static_cast<int>(6 * o.heartbeat_ms));
  // A peer's message larger than any client may receive is refused by libzmq (it drops the
  // connection) instead of being allocated: a backend is a trust boundary too.
  s.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(o.max_message + kMetaAllowance));
}

Link::Link(zmq::context_t& ctx, const Options& opts, const std::string& endpoint,
           const std::string& routing_id, unsigned core, unsigned index, BridgeCounters& counters)
    : sock_(ctx, zmq::socket_type::dealer),
      monitor_(ctx, zmq::socket_type::pair),
      endpoint_(endpoint),
      inproc_(endpoint.rfind("inproc://", 0) == 0),
      window_(kWindowStart),
      window_events_(opts.window_events),
      window_bytes_cap_(opts.window_bytes),
      counters_(counters) {
  set_common(sock_, opts);
  sock_.set(zmq::sockopt::routing_id, routing_id);
  // No queueing into a pipe while disconnected: libzmq would replay it after a reconnect, and
  // the window below already does, in order and counted.
  sock_.set(zmq::sockopt::immediate, 1);
  if (opts.curve.enabled() && !inproc_) {
    sock_.set(zmq::sockopt::curve_serverkey, opts.curve.server_key);
    sock_.set(zmq::sockopt::curve_publickey, opts.curve.public_key);
    sock_.set(zmq::sockopt::curve_secretkey, opts.curve.secret_key);
  }
  if (!inproc_) {
    // Up and down come from the monitor: a DEALER tells nothing of its peer otherwise.
    std::string mon =
        "inproc://wsedge-monitor-" + std::to_string(core) + "-" + std::to_string(index);
    if (zmq_socket_monitor(sock_.handle(), mon.c_str(),
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) != 0)
      throw zmq::error_t();
    monitor_.connect(mon);
  }
  sock_.connect(endpoint);
}

bool Link::send_event(Event& e) {
  zmq::message_t out[3];
  out[0].copy(e.header);
  out[1].copy(e.meta);
  int n = 2;
  if (e.type == Type::kMessage || e.type == Type::kClientPublish) out[n++].copy(e.payload);
  if (!send_frames(sock_, out, n)) return false;
  counters_.sent.count(static_cast<std::uint8_t>(e.type));
  ++counters_.events_up;
  if (e.sent_before) ++counters_.events_resent;
  e.sent_before = true;
  return true;
}

bool Link::push(Event&& e) {
  keep(std::move(e));
  if (state_ != State::kUp || blocked_) return false;
  if (!window_full()) return true;
  ++counters_.window_full;
  return false;
}

bool Link::flush() {
  if (state_ != State::kUp) return false;
  while (sent_ < window_.size()) {
    if (!send_event(window_[sent_])) {
      blocked_ = true;
      ++counters_.backend_full;
      return false;
    }
    ++sent_;
  }
  blocked_ = false;
  return true;
}

bool Link::send_control(Frames& m) {
  if (state_ == State::kDown) return false;
  if (!send_frames(sock_, m.f, m.n)) return false;
  // The type is byte 3 of the header frame (protocol.cpp encode_header), which we wrote.
  if (m.f[0].size() > 3) counters_.sent.count(static_cast<const std::uint8_t*>(m.f[0].data())[3]);
  return true;
}

void Link::connected(const std::string& node_name, const ConnId& core_id, unsigned cores) {
  state_ = State::kConnected;
  Header h{kVersion, Type::kHello, 0, core_id};
  auto hb = encode_header(h);
  hello_[0].rebuild(hb.data(), hb.size());
  std::byte meta[512];
  const std::byte versions[] = {std::byte{kVersion}};
  MetaWriter w(meta, sizeof meta);
  w.add("versions", versions)
      .add("node", node_name)
      .add_u16("cores", static_cast<std::uint16_t>(cores));
  hello_[1].rebuild(w.bytes().data(), w.bytes().size());
  hello_pending_ = true;
  send_hello();
}

// HELLO meets EAGAIN when the handshake's monitor event comes before the pipe is attached to
// the socket (ZMQ_IMMEDIATE): it stays pending and goes when the socket shows POLLOUT; the
// connection itself is fine, so no reconnect would ever retry it.
bool Link::send_hello() {
  if (!hello_pending_ || state_ != State::kConnected) return false;
  zmq::message_t m[2];
  m[0].copy(hello_[0]);
  m[1].copy(hello_[1]);
  if (!send_frames(sock_, m, 2)) return false;
  counters_.sent.count(static_cast<std::uint8_t>(Type::kHello));
  hello_pending_ = false;
  return true;
}

bool Link::welcomed(std::uint64_t instance) {
  bool fresh = !known_instance_ || instance != instance_;
  instance_ = instance;
  known_instance_ = true;
  state_ = State::kUp;
  up_gauge_.set(1);
  sent_ = 0;
  counted_ = 0;
  blocked_ = false;
  return fresh;
}

void Link::counted(std::uint64_t count) {
  if (count < counted_) return;  // stale: from before a reconnect
  std::uint64_t n = count - counted_;
  counted_ = count;
  while (n > 0 && sent_ > 0) {
    window_bytes_ -= window_.front().payload.size();
    window_.pop_front();
    --sent_;
    --n;
  }
}

void Link::down() {
  state_ = State::kDown;
  up_gauge_.set(0);
  hello_pending_ = false;
  sent_ = 0;
  blocked_ = false;
}

void Link::prepend(std::vector<Event>& first) {
  Ring<Event> rest = std::move(window_);
  window_ = Ring<Event>(kWindowStart);
  window_bytes_ = 0;
  sent_ = 0;
  for (Event& e : first) keep(std::move(e));
  while (!rest.empty()) {
    keep(std::move(rest.front()));
    rest.pop_front();
  }
}

Ring<Event> Link::take_all() {
  Ring<Event> all = std::move(window_);
  window_ = Ring<Event>(kWindowStart);
  window_bytes_ = 0;
  sent_ = 0;
  return all;
}

}  // namespace wsedge::bridge
