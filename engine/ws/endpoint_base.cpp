#include "endpoint_base.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <tuple>

#include "engine/log.hpp"
#include "engine/protocol/close_code.hpp"
#include "engine/protocol/proxy_header.hpp"
#include "engine/protocol/unmask.hpp"

namespace wsedge::ws {

using protocol::Opcode;

EndpointBase::~EndpointBase() {
  if (client_session_) SSL_SESSION_free(client_session_);
  for (Sweep* sw : {&slow_sweep_, &ip_sweep_}) {
    if (sw->armed) reactor_.cancel(sw->timer);
  }
}

EndpointBase::EndpointBase(io::Reactor& reactor, const EndpointConfig& cfg)
    : reactor_(reactor),
      cfg_(cfg),
      assembly_{cfg.max_assembly_bytes},
      deflate_memory_{cfg.deflate.context_memory} {
  conns_.reserve(reactor.config().max_connections);
  tls_plain_.resize(tls::Session::kReadCapacity);  // one record's plaintext at most
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&mask_state_), sizeof mask_state_) != 1 ||
      mask_state_ == 0)
    mask_state_ = 0x9E3779B97F4A7C15ull;
  if (cfg.access_log) stats_.reserve(reactor.config().max_connections);
  derive_limits();
}

void EndpointBase::reconfigure(const EndpointConfig& cfg) {
  // Connections keep what they negotiated; new messages compress at the new level.
  if (codec_ && cfg.deflate.level != cfg_.deflate.level)
    codec_ = std::make_unique<deflate::Codec>(cfg.deflate.level);
  deflate_memory_.limit = cfg.deflate.context_memory;
  cfg_ = cfg;
  assembly_.limit = cfg.max_assembly_bytes;  // what is held stays; new needs meet the new limit
  derive_limits();
}

void EndpointBase::derive_limits() {
  // The access log, switched by a reload too: off drops every connection's figures (no line
  // for them), on counts those that start from now on.
  if (cfg_.access_log)
    access_limit_.set_rate(cfg_.access_log_rate);
  else
    stats_.clear();
  std::uint64_t now = reactor_.now_ms();
  RateLimit msg{cfg_.max_msg_rate, cfg_.msg_burst ? cfg_.msg_burst : cfg_.max_msg_rate};
  RateLimit bytes{cfg_.max_byte_rate, cfg_.byte_burst ? cfg_.byte_burst : cfg_.max_byte_rate};
  for (auto [limit, next, buckets] :
       {std::tuple{&msg_limit_, msg, &msg_buckets_}, {&byte_limit_, bytes, &byte_buckets_}}) {
    if (limit->rate == next.rate && limit->burst == next.burst) continue;
    *limit = next;
    // within_rates() indexes the buckets by slot: a rate turned on over open connections
    // needs one for every slot in use, or it reads past the table.
    buckets->assign(next.rate ? conns_.size() : 0, TokenBucket{});
    for (TokenBucket& b : *buckets) b.fill(next, now);
  }
  std::uint64_t hs = cfg_.handshake_rate_per_ip;
  RateLimit handshakes{hs, cfg_.handshake_burst_per_ip ? cfg_.handshake_burst_per_ip : 2 * hs};
  if (cfg_.max_conns_per_ip || hs) {
    if (ips_)
      ips_->set_limit(handshakes);
    else
      ips_ = std::make_unique<IpTable>(handshakes);
  } else if (ips_) {
    // reset() releases through ip_of_: nothing may point into the table once it is gone.
    ip_of_.clear();
    ips_.reset();
    if (ip_sweep_.armed) reactor_.cancel(ip_sweep_.timer);
    ip_sweep_.armed = false;
  }
  if (cfg_.min_recv_rate) {
    // track_incomplete() indexes incomplete_pos_ by slot for every connection.
    if (incomplete_pos_.size() < conns_.size()) incomplete_pos_.resize(conns_.size(), kUnwatched);
  } else {
    for (const Incomplete& w : incomplete_) incomplete_pos_[w.idx] = kUnwatched;
    incomplete_.clear();
  }
}

EndpointBase::Conn& EndpointBase::start(io::SocketId id, Phase phase, std::uint8_t flags,
                                        std::uint32_t timer_ms) {
  if (id.idx >= conns_.size()) conns_.resize(id.idx + 1);
  reset(id);  // a slot reused before its previous connection's storage was given back
  Conn& c = conns_[id.idx];
  c.phase = phase;
  c.flags = flags;
  if (timer_ms) reactor_.set_timer(id, timer_ms);
  // The side tables of configured features grow with the slots in use, like conns_.
  if (cfg_.access_log) {
    if (stats_.size() <= id.idx) stats_.resize(id.idx + 1);
    stats_[id.idx] = ConnStats{reactor_.now_ms()};
  }
  if (cfg_.min_recv_rate && incomplete_pos_.size() <= id.idx)
    incomplete_pos_.resize(id.idx + 1, kUnwatched);
  for (auto [limit, buckets] :
       {std::pair{&msg_limit_, &msg_buckets_}, {&byte_limit_, &byte_buckets_}}) {
    if (!limit->rate) continue;
    if (buckets->size() <= id.idx) buckets->resize(id.idx + 1);
    (*buckets)[id.idx].fill(*limit, reactor_.now_ms());
  }
  return c;
}

void EndpointBase::reset(io::SocketId id) {
  if (id.idx >= conns_.size()) return;
  if (id.idx < tls_conns_.size()) {
    TlsConn& t = tls_conns_[id.idx];
    if (t.staged) reactor_.pool().release(t.staged);
    t.staged = nullptr;
    t.session.reset();
  }
  if (id.idx < incomplete_pos_.size() && incomplete_pos_[id.idx] != kUnwatched) unwatch(id.idx);
  end_deflate(id.idx);
  if (id.idx < ip_of_.size() && ip_of_[id.idx]) {
    ips_->release(ip_of_[id.idx], reactor_.now_ms());
    ip_of_[id.idx] = nullptr;
    if (ips_->idle()) arm(ip_sweep_, kIpSweepMs, sweep_ips);
  }
  Conn& c = conns_[id.idx];
  c.reader.release(reactor_.pool());
  if (c.handshake) reactor_.pool().release(c.handshake);
  bool tracked = c.phase != kIdle;
  c = Conn{};
  if (tracked && reset_hook_) reset_hook_(this, id.idx);
}

void EndpointBase::write_frame(io::SocketId id, bool client, Opcode op,
                               std::span<const std::byte> payload, bool fin, std::uint8_t rsv) {
  std::byte header[protocol::kMaxFrameHeader];
  std::uint32_t key = 0;
  if (client) {
    // RFC 6455 §5.3: a fresh, unpredictable key per frame. xorshift64 seeded from RAND_bytes is
    // enough here: masking defends proxies against cache poisoning, not secrecy.
    mask_state_ ^= mask_state_ << 13;
    mask_state_ ^= mask_state_ >> 7;
    mask_state_ ^= mask_state_ << 17;
    key = static_cast<std::uint32_t>(mask_state_);
  }
  std::size_t hlen =
      protocol::write_frame_header(header, fin, op, payload.size(), client ? &key : nullptr, rsv);
  if (!client && payload.size() >= kLargePayload) {
    if (TlsConn* t = tls_conn(id)) {
      if (t->session->handshake_done()) {
        // After what is staged and the header; one extra record costs less than the copy.
        emit(id, header, hlen);
        tls_flush(*t, false);
        if (t->session->write(payload.data(), payload.size()) != tls::Session::Result::kOk)
          ++counters_.tls_errors;
        return;
      }
    } else if (memory::Buffer* b = delivering_ ? delivering_->take_delivered(payload) : nullptr) {
      // Sending back (or on) the message being delivered: its buffer joins the output queue,
      // shared with the reader until on_message returns.
      emit(id, header, hlen);
      reactor_.write_buffer(id, b);
      return;
    }
  }
  // One reservation for header and payload: the frame lands in one output buffer when it fits.
  const std::byte* src = payload.data();
  emit(id, hlen + payload.size(), [&](std::byte* dst, std::size_t off, std::size_t len) {
    while (len > 0 && off < hlen) {
      std::size_t n = std::min(len, hlen - off);
      std::memcpy(dst, header + off, n);
      dst += n;
      off += n;
      len -= n;
    }
    if (len == 0) return;
    if (client)
      protocol::copy_masked(dst, src + (off - hlen), len, key, off - hlen);
    else
      std::memcpy(dst, src + (off - hlen), len);
  });
}

void EndpointBase::finish(io::SocketId id, std::uint16_t code, std::string_view reason) {
  Conn& c = conns_[id.idx];
  bool known = c.phase == kOpen || c.phase == kCloseSent || (c.flags & kClient);
  if (c.phase == kDone || c.phase == kIdle) return;
  // Who ended it: the peer when its Close came first or its TCP went away while open; the
  // server for every close it started (errors, limits, shutdown) and after its own Close.
  bool peer =
      c.phase == kOpen && ((c.flags & kPeerClose) || code == protocol::close_code::kAbnormal);
  if (known)
    ++counters_.closes
          .by[peer ? CloseCounters::kPeer : CloseCounters::kServer][CloseCounters::slot(code)];
  c.phase = kDone;
  if (!known) return;
  // Before on_close: the application's state (its user, its route) is still there.
  // (A slot's figures from before a reload turned the log on are zero: no line for them.)
  if (ConnStats* st = stats(id); st && st->start_ms && !(c.flags & kClient))
    log_access(id, code, peer);
  io::SocketId outer = finishing_;
  finishing_ = id;
  on_close_hook_(this, id, code, reason);
  finishing_ = outer;
}

void EndpointBase::log_access(io::SocketId id, std::uint16_t code, bool by_peer) {
  std::uint64_t suppressed = 0;
  if (!access_limit_.allow(reactor_.now_ms(), suppressed)) return;
  const ConnStats& s = stats_[id.idx];
  char peer[io::PeerAddress::kMaxText];
  log::Fields f;
  f.add(log::kv("peer", peer_text(id, peer)));
  // The application's: the verified user, the route (never the query: it may hold a token).
  if (access_hook_) access_hook_(this, id, f);
  if (!f.has("user")) f.add(log::kv("user", "-"));
  // The application names connections its own way (the bridge: the id backends know); else
  // the slot and generation, unique on this core while the process runs.
  char conn[24];
  if (!f.has("conn")) {
    int n = std::snprintf(conn, sizeof conn, "%x.%x", id.idx, id.gen);
    f.add(log::kv("conn", std::string_view(conn, static_cast<std::size_t>(n))));
  }
  // A 1006 is never sent: the connection ended without a closing handshake.
  std::string_view side = code == protocol::close_code::kAbnormal ? "abnormal"
                          : by_peer                               ? "client"
                                                                  : "server";
  const log::Field engine[] = {log::kv("duration_ms", reactor_.now_ms() - s.start_ms),
                               log::kv("messages_in", s.messages_in),
                               log::kv("messages_out", s.messages_out),
                               log::kv("bytes_in", s.bytes_in),
                               log::kv("bytes_out", s.bytes_out),
                               log::kv("close_code", code),
                               log::kv("close_side", side),
                               log::kv("suppressed", suppressed)};
  // Regardless of --log-level: --access-log is its switch.
  log::emit(log::Level::kInfo, "access", f.view(),
            std::span<const log::Field>(engine, std::size(engine) - (suppressed ? 0 : 1)));
}

void EndpointBase::end(io::SocketId id, std::uint16_t code, std::string_view reason, Ending how) {
  finish(id, code, reason);
  if (how == Ending::kGraceful)
    close_socket(id);
  else
    reactor_.abort(id);
  if (!(conns_[id.idx].flags & kBusy)) reset(id);
}

void EndpointBase::close(io::SocketId id, std::uint16_t code, std::string_view reason) {
  if (!is_open(id)) return;
  if (!protocol::may_send_close_code(code)) code = protocol::close_code::kNormal;
  send_close(id, code, reason);
  conns_[id.idx].phase = kCloseSent;
  reactor_.resume_reading(id);  // the peer's Close must be read, whatever paused this client
  reactor_.set_timer(id, cfg_.close_timeout_ms);
}

SendResult EndpointBase::send(io::SocketId id, Opcode op, std::span<const std::byte> payload,
                              bool fin, std::uint8_t rsv) {
  if (!is_open(id)) return SendResult::kClosed;
  Conn& c = conns_[id.idx];
  // A frame the peer would fail the connection for (RFC 6455 §5.2, §5.5) is not sent.
  bool control = protocol::is_control(static_cast<std::uint8_t>(op));
  if ((rsv & ~c.rsv) || (control && (!fin || payload.size() > protocol::kMaxControlPayload)))
    return SendResult::kInvalid;
  std::size_t size = payload.size();
  if (!deflate_conns_.empty()) payload = maybe_compress(id, op, payload, fin, rsv);
  write_frame(id, c.flags & kClient, op, payload, fin, rsv);
  return sent(id, size);
}

SendResult EndpointBase::sent(io::SocketId id, std::size_t payload_bytes) {
  ++counters_.messages_out;
  counters_.payload_bytes_out += payload_bytes;
  if (ConnStats* s = stats(id)) {
    ++s->messages_out;
    s->bytes_out += payload_bytes;
  }
  if (reactor_.queued(id) > cfg_.max_outbound) {
    // The peer is not reading: closing beats holding unbounded memory for it.
    ++counters_.backlog_exceeded;
    end(id, protocol::close_code::kPolicyViolation, "send backlog exceeded", Ending::kAbort);
    return SendResult::kClosed;
  }
  return reactor_.congested(id) ? SendResult::kBackpressure : SendResult::kOk;
}

memory::Buffer* EndpointBase::prepare_frame(Opcode op, std::span<const std::byte> payload,
                                            std::uint8_t rsv) {
  auto o = static_cast<std::uint8_t>(op);
  bool control = protocol::is_control(o);
  // A prepared frame is a whole message (a continuation would arrive outside one), and must be
  // one every peer accepts (RFC 6455 §5.2, §5.5; RSV on control frames: RFC 7692 §6).
  bool known = o == 1 || o == 2 || (o >= 8 && o <= 10);
  if (!known || (rsv & ~0x70) ||
      (control && (rsv || payload.size() > protocol::kMaxControlPayload)))
    return nullptr;
  if (payload.size() > memory::BufferPool::kMaxCapacity - protocol::kMaxFrameHeader) return nullptr;
  memory::Buffer* b = reactor_.pool().acquire(protocol::kMaxFrameHeader + payload.size());
  std::size_t hlen =
      protocol::write_frame_header(b->data(), true, op, payload.size(), nullptr, rsv);
  if (!payload.empty()) std::memcpy(b->data() + hlen, payload.data(), payload.size());
  b->len = static_cast<std::uint32_t>(hlen + payload.size());
  return b;
}

SendResult EndpointBase::send_prepared(io::SocketId id, memory::Buffer* frame) {
  SendResult r = queue_prepared(id, frame);
  if (r != SendResult::kOk) return r;
  const std::byte* bytes = frame->bytes() + frame->off;
  return sent(id, frame->len - frame->off - protocol::frame_header_size(bytes));
}

SendResult EndpointBase::queue_prepared(io::SocketId id, memory::Buffer* frame) {
  if (!is_open(id)) return SendResult::kClosed;
  Conn& c = conns_[id.idx];
  // Client frames are masked with a key of their own each: one frame cannot serve them.
  if (!frame || (c.flags & kClient) || frame->len - frame->off < 2) return SendResult::kInvalid;
  const std::byte* bytes = frame->bytes() + frame->off;
  std::size_t len = frame->len - frame->off;
  if (static_cast<std::uint8_t>(bytes[0]) & 0x70 & ~c.rsv) return SendResult::kInvalid;
  if (TlsConn* t = tls_conn(id)) {
    if (len >= kLargePayload && t->session->handshake_done()) {
      // As write_frame: what is staged goes first, then the frame is encrypted where it lies.
      tls_flush(*t, false);
      if (t->session->write(bytes, len) != tls::Session::Result::kOk) ++counters_.tls_errors;
    } else {
      // A small frame joins this turn's plaintext: one record for all of them.
      emit(id, bytes, len);
    }
  } else {
    reactor_.write_shared(id, frame);
  }
  return SendResult::kOk;
}

SendResult EndpointBase::ping(io::SocketId id, std::span<const std::byte> payload) {
  if (!is_open(id)) return SendResult::kClosed;
  if (payload.size() > protocol::kMaxControlPayload) return SendResult::kInvalid;
  write_frame(id, conns_[id.idx].flags & kClient, Opcode::kPing, payload, true, 0);
  ++counters_.pings_sent;
  return SendResult::kOk;
}

void EndpointBase::send_close(io::SocketId id, std::uint16_t code, std::string_view reason) {
  std::byte body[protocol::kMaxControlPayload];
  std::size_t n = protocol::write_close_body(body, code, reason);
  write_frame(id, conns_[id.idx].flags & kClient, Opcode::kClose, {body, n}, true, 0);
}

bool EndpointBase::decide(io::SocketId id, const UpgradeDecision& d) {
  if (!reactor_.alive(id) || id.idx >= conns_.size() || conns_[id.idx].phase != kUpgradePending)
    return false;
  if (d.status == UpgradeDecision::kPending) return true;  // still undecided; the deadline holds
  // Unlike on_data, nothing of this connection need be in flight now (reading paused): the
  // pin keeps its slot from being reused by a connect() in on_open while we still use it.
  reactor_.pin(id);
  busy(id, [&] { decide_hook_(this, id, d); });
  reactor_.unpin(id);
  return true;
}

void EndpointBase::refuse(io::SocketId id, std::uint16_t status, std::string_view reason,
                          std::string_view headers) {
  char out[protocol::kMaxResponseFixed + 128 + kMaxAnswerExtras];
  std::size_t n = protocol::write_http_error(out, sizeof out, status, reason, headers);
  if (n == 0) {
    LOG_WARN_LIMITED(1, "refusal_headers_too_long", log::kv("bytes", headers.size()),
                     log::kv("detail", "sent without them"));
    n = protocol::write_http_error(out, sizeof out, status, reason);
  }
  ++counters_.handshake_rejected;
  emit(id, out, n);
  conns_[id.idx].phase = kDone;
  close_socket(id);
}

void EndpointBase::answer_health(io::SocketId id) {
  char out[protocol::kMaxResponseFixed];
  std::size_t n = protocol::write_health(out, sizeof out);
  ++counters_.health_checks;
  emit(id, out, n);
  conns_[id.idx].phase = kDone;
  close_socket(id);
}

void EndpointBase::answer_plain_get(io::SocketId id, std::string_view target) {
  std::string_view path = protocol::target_path(target);
  if (path == "/healthz") {
    answer_health(id);
    return;
  }
  const StaticPage* page = nullptr;
  for (const StaticPage& p : cfg_.pages) {
    if (p.path == path) {
      page = &p;
      break;
    }
  }
  if (!page) {
    refuse(id, 426, "this endpoint speaks WebSocket only");
    return;
  }
  char head[protocol::kMaxResponseFixed + 128];
  std::size_t n =
      protocol::write_page_head(head, sizeof head, page->content_type, page->body.size());
  if (n == 0) {
    LOG_ERROR_LIMITED(1, "page_content_type_too_long", log::kv("path", path));
    refuse(id, 500, "page misconfigured");
    return;
  }
  ++counters_.pages_served;
  emit(id, head, n);
  // Through the output queue in pieces of at most 1 MiB (or staged for TLS): a page larger than
  // one send goes out over as many as it takes, then the FIN.
  if (!page->body.empty()) emit(id, page->body.data(), page->body.size());
  conns_[id.idx].phase = kDone;
  close_socket(id);
}

bool EndpointBase::accept_upgrade(io::SocketId id, const protocol::UpgradeRequest& req,
                                  const UpgradeDecision& d) {
  Conn& c = conns_[id.idx];
  c.rsv = d.rsv;
  char deflate_answer[protocol::kMaxDeflateAnswer];
  std::string_view ours = negotiate(id, req, d, deflate_answer);
  std::string_view extensions = ours.empty() ? d.extensions : ours;
  char out[protocol::kMaxResponseFixed + kMaxAnswerExtras];
  std::size_t n = protocol::write_switching_protocols(out, sizeof out, req.key, d.protocol,
                                                      extensions, d.headers);
  if (n == 0) {
    // An answer that does not fit is the application's bug; the client must not get a 101
    // without the extension or protocol it was promised.
    LOG_ERROR_LIMITED(1, "upgrade_answer_too_long",
                      log::kv("bytes", d.protocol.size() + extensions.size() + d.headers.size()));
    refuse(id, 500, "upgrade answer too long");
    return false;
  }
  emit(id, out, n);
  ++counters_.handshakes;
  // Counted once the 101 carries it: a refused answer negotiated nothing.
  if (!ours.empty()) ++counters_.deflate_negotiated;
  counters_.handshake_time.record(now_us() - c.accepted_us);
  c.phase = kOpen;
  // The handshake's use of the flag ends: keep-alive starts from not having heard anything.
  c.flags &= static_cast<std::uint8_t>(~(kHeardFrom | kHandshakeRest));
  arm_keepalive(id);
  if (drain_.started) drain_later(id);
  return true;
}

void EndpointBase::begin_server_handshake(io::SocketId id) {
  std::uint32_t fb = cfg_.first_byte_timeout_ms;
  bool first_byte_stage = fb && fb < cfg_.handshake_timeout_ms;
  unsigned listener = reactor_.listener(id);
  bool proxied = listener < proxy_listeners_.size() && proxy_listeners_[listener];
  // Without a first-byte stage the handshake deadline is the timer's only meaning. Behind a
  // proxy the same deadlines cover its header: a proxy that connects and says nothing holds
  // a slot no longer than a client would.
  Conn& c = start(id, proxied ? kProxyHeader : kServerHandshake,
                  first_byte_stage ? 0 : kHeardFrom | kHandshakeRest,
                  first_byte_stage ? fb : cfg_.handshake_timeout_ms);
  c.accepted_us = now_us();
  // Counted now, the connection would count against the proxy's address: every client
  // behind it would share one per-address limit.
  if (!proxied) begin_stream(id);
}

void EndpointBase::begin_stream(io::SocketId id) {
  if (ips_) {
    if (ip_of_.size() <= id.idx) ip_of_.resize(id.idx + 1);
    ip_of_[id.idx] = ips_->acquire(reactor_.peer(id), reactor_.now_ms());
  }
  start_tls(id);
}

EndpointBase::ProxyRest EndpointBase::proxy_header(io::SocketId id, std::byte* data,
                                                   std::size_t len) {
  Conn& c = conns_[id.idx];
  // Bounded: the parser refuses a header past kMaxProxyV2 bytes before asking for more.
  std::span<std::byte> in = gather(c, data, len);
  std::byte* base = in.data();
  std::size_t have = in.size();
  protocol::ProxyResult r = protocol::parse_proxy_header({base, have});
  switch (r.kind) {
    case protocol::ProxyParse::kIncomplete:
      if (!c.handshake) c.handshake = reactor_.pool().append(nullptr, data, len);
      return {};
    case protocol::ProxyParse::kError:
      // Nothing to answer: whether the client expected TLS or HTTP is unknown.
      ++counters_.proxy_header_errors;
      end(id, protocol::close_code::kAbnormal, r.error, Ending::kAbort);
      return {};
    case protocol::ProxyParse::kDone:
      break;
  }
  ++counters_.proxy_headers;
  if (!r.local) reactor_.set_peer(id, io::PeerAddress{r.ip, r.port});
  c.phase = kServerHandshake;
  // The upgrade request assembles in a handshake buffer of its own: the rest may lie in this
  // one, which the caller gives back once the rest is read.
  ProxyRest rest{base + r.consumed, have - r.consumed, c.handshake};
  c.handshake = nullptr;
  begin_stream(id);
  return rest;
}

void EndpointBase::handshake_deadline(io::SocketId id) {
  Conn& c = conns_[id.idx];
  if (!(c.flags & kHeardFrom)) {
    // It said nothing: nothing to answer. One silent socket per attacker packet otherwise
    // holds a slot for the whole handshake deadline.
    ++counters_.first_byte_timeouts;
    end(id, protocol::close_code::kAbnormal, "nothing received after accept", Ending::kAbort);
  } else if (!(c.flags & kHandshakeRest)) {
    // The timer fired first_byte_timeout_ms after accept: what is left runs to the handshake
    // deadline from accept, not from the first byte.
    c.flags |= kHandshakeRest;
    reactor_.set_timer(id, cfg_.handshake_timeout_ms - cfg_.first_byte_timeout_ms);
  } else {
    ++counters_.handshake_timeouts;
    end(id, protocol::close_code::kAbnormal, "handshake timed out", Ending::kAbort);
  }
}

bool EndpointBase::screen_upgrade(io::SocketId id, std::string_view origin) {
  if (IpTable::Entry* e = id.idx < ip_of_.size() ? ip_of_[id.idx] : nullptr) {
    // Its own connection is among e->conns.
    if (cfg_.max_conns_per_ip && e->conns > cfg_.max_conns_per_ip) {
      ++counters_.ip_conn_refused;
      refuse(id, 503, "too many connections from this address", "Retry-After: 5\r\n");
      return false;
    }
    std::uint32_t retry_s = 0;
    if (!ips_->take_handshake(e, reactor_.now_ms(), retry_s)) {
      ++counters_.ip_rate_refused;
      char retry[40];
      int n = std::snprintf(retry, sizeof retry, "Retry-After: %u\r\n", retry_s);
      refuse(id, 429, "too many upgrades from this address", {retry, static_cast<std::size_t>(n)});
      return false;
    }
  }
  if (!origin_allowed(cfg_.allowed_origins, origin)) {
    ++counters_.origin_refused;
    refuse(id, 403, "origin not allowed");
    return false;
  }
  return true;
}

bool EndpointBase::within_rates(io::SocketId id, std::size_t bytes) {
  std::uint64_t now = reactor_.now_ms();
  const char* why;
  if (msg_limit_.rate && !msg_buckets_[id.idx].take(msg_limit_, now, 1)) {
    ++counters_.msg_rate_closes;
    why = "message rate exceeded";
  } else if (byte_limit_.rate && !byte_buckets_[id.idx].take(byte_limit_, now, bytes)) {
    ++counters_.byte_rate_closes;
    why = "byte rate exceeded";
  } else {
    return true;
  }
  send_close(id, protocol::close_code::kPolicyViolation, why);
  end(id, protocol::close_code::kPolicyViolation, why, Ending::kGraceful);
  return false;
}

void EndpointBase::track_incomplete(io::SocketId id, bool incomplete, std::size_t bytes) {
  if (!cfg_.min_recv_rate) return;
  std::uint32_t pos = incomplete_pos_[id.idx];
  if (!incomplete) {
    if (pos != kUnwatched) unwatch(id.idx);
    return;
  }
  if (pos != kUnwatched) {
    std::uint64_t sum = std::uint64_t{incomplete_[pos].bytes} + bytes;
    incomplete_[pos].bytes = static_cast<std::uint32_t>(std::min<std::uint64_t>(sum, UINT32_MAX));
    return;
  }
  // The read that left it incomplete does not count: the rate is of what follows.
  incomplete_pos_[id.idx] = static_cast<std::uint32_t>(incomplete_.size());
  incomplete_.push_back({id.idx, static_cast<std::uint32_t>(reactor_.now_ms()), 0});
  arm(slow_sweep_, kSlowSweepMs, sweep_slow);
}

void EndpointBase::unwatch(std::uint32_t idx) {
  std::uint32_t pos = incomplete_pos_[idx];
  incomplete_[pos] = incomplete_.back();
  incomplete_pos_[incomplete_[pos].idx] = pos;
  incomplete_.pop_back();
  incomplete_pos_[idx] = kUnwatched;
}

void EndpointBase::check_recv_rates() {
  auto now = static_cast<std::uint32_t>(reactor_.now_ms());
  // Backwards: closing one swaps the last entry, already checked, into its place.
  for (std::size_t i = incomplete_.size(); i-- > 0;) {
    if (i >= incomplete_.size()) continue;  // an application's on_close ended several
    Incomplete& w = incomplete_[i];
    io::SocketId id = reactor_.id_at(w.idx);
    Phase phase = conns_[w.idx].phase;
    if (phase != kServerHandshake && phase != kOpen) {
      unwatch(w.idx);  // closing: the close deadline governs it now
      continue;
    }
    if (reactor_.reading_paused(id) || reactor_.congested(id)) {
      // We stopped reading it (its backend is full, or it does not read our output): its
      // silence is ours. The window restarts once reading does.
      w.since_ms = now;
      w.bytes = 0;
      continue;
    }
    std::uint32_t elapsed = now - w.since_ms;
    if (elapsed <= cfg_.recv_rate_grace_ms ||
        std::uint64_t{w.bytes} * 1000 >= std::uint64_t{cfg_.min_recv_rate} * elapsed)
      continue;
    ++counters_.slow_recv_closes;
    if (phase == kServerHandshake) {
      refuse(id, 408, "request too slow");
      reset(id);
    } else {
      send_close(id, protocol::close_code::kPolicyViolation, "receive too slow");
      end(id, protocol::close_code::kPolicyViolation, "receive too slow", Ending::kGraceful);
    }
  }
}

void EndpointBase::arm(Sweep& s, std::uint32_t ms, io::TimerFn fn) {
  if (s.armed) return;
  s.timer = reactor_.schedule(ms, fn, this);
  s.armed = true;
}

void EndpointBase::sweep_slow(void* self, io::Reactor&) {
  auto* ep = static_cast<EndpointBase*>(self);
  ep->slow_sweep_.armed = false;
  ep->check_recv_rates();
  if (!ep->incomplete_.empty()) ep->arm(ep->slow_sweep_, kSlowSweepMs, sweep_slow);
}

void EndpointBase::sweep_ips(void* self, io::Reactor&) {
  auto* ep = static_cast<EndpointBase*>(self);
  ep->ip_sweep_.armed = false;
  if (ep->ips_->sweep(ep->reactor_.now_ms())) ep->arm(ep->ip_sweep_, kIpSweepMs, sweep_ips);
}

void EndpointBase::drain(std::uint32_t window_ms) {
  if (!drain_.started) {
    drain_.started = true;
    drain_.start_ms = reactor_.now_ms();
    drain_.window_ms = window_ms;
    for_each_open([this](Connection c) { drain_.ids.push_back(c.id()); });
  } else {
    drain_.window_ms = std::min(drain_.window_ms, window_ms);
  }
  close_due();
}

void EndpointBase::drain_later(io::SocketId id) {
  // Accepted before the drain began, opened since: it takes its turn with the rest (a
  // handshake under way is not cut off: during a replacement its client must not see an
  // error), or at once if the window has passed.
  drain_.ids.push_back(id);
  arm(drain_.step, kDrainStepMs, drain_step);
}

void EndpointBase::drain_step(void* self, io::Reactor&) {
  auto* ep = static_cast<EndpointBase*>(self);
  ep->drain_.step.armed = false;
  ep->close_due();
}

void EndpointBase::close_due() {
  Drain& d = drain_;
  std::size_t n = d.ids.size();
  std::uint64_t elapsed = reactor_.now_ms() - d.start_ms;
  // Due by now: those whose turn k * window / N has come (the first at once).
  std::size_t due = d.window_ms == 0 || elapsed >= d.window_ms
                        ? n
                        : std::min<std::size_t>(n, elapsed * n / d.window_ms + 1);
  for (; d.closed < due; ++d.closed) {
    // One that ended meanwhile (or whose slot holds a newer connection) is skipped: close()
    // checks the generation.
    close(d.ids[d.closed], protocol::close_code::kGoingAway, "server shutting down");
  }
  if (d.closed < n) arm(d.step, kDrainStepMs, drain_step);
}

void EndpointBase::arm_keepalive(io::SocketId id) {
  if (cfg_.ping_interval_ms)
    reactor_.set_timer(id, cfg_.ping_interval_ms);
  else
    reactor_.cancel_timer(id);
}

void EndpointBase::count_failure(const protocol::ReadResult& r) {
  if (r.error == protocol::kBudgetExhausted) {
    ++counters_.assembly_refused;
    return;
  }
  switch (r.code) {
    case protocol::close_code::kInvalidPayload:
      ++counters_.invalid_utf8;
      break;
    case protocol::close_code::kMessageTooBig:
      ++counters_.too_big;
      break;
    default:
      ++counters_.protocol_errors;
      break;
  }
}

void EndpointBase::begin_client_handshake(io::SocketId id, std::string_view host,
                                          std::string_view target, std::string_view protocols) {
  protocol::ClientKey key = protocol::make_client_key();
  Conn& c = start(id, kClientHandshake, kClient, cfg_.handshake_timeout_ms);
  c.handshake =
      reactor_.pool().append(nullptr, reinterpret_cast<const std::byte*>(key.data()), key.size());
  start_client_tls(id, host);  // before the request, which must go out encrypted
  std::string_view extensions;
  DeflateMode mode = cfg_.deflate.mode;
  if (mode == DeflateMode::kNoContextTakeover || mode == DeflateMode::kContextTakeover) {
    // The answer is checked against what was offered, whatever a reload changes meanwhile.
    ensure_deflate();
    if (deflate_conns_.size() <= id.idx) deflate_conns_.resize(id.idx + 1);
    deflate_conns_[id.idx].offered = mode;
    extensions = protocol::deflate_client_offer(mode == DeflateMode::kContextTakeover);
  }
  char out[2048];
  std::size_t n = protocol::write_upgrade_request(out, sizeof out, host, target,
                                                  {key.data(), key.size()}, protocols, extensions);
  emit(id, out, n);
}

void EndpointBase::emit(io::SocketId id, const void* data, std::size_t len) {
  auto* src = static_cast<const std::byte*>(data);
  emit(id, len,
       [src](std::byte* dst, std::size_t off, std::size_t n) { std::memcpy(dst, src + off, n); });
}

void EndpointBase::start_tls(io::SocketId id) {
  unsigned listener = reactor_.listener(id);
  if (!tls_ || (listener < plain_listeners_.size() && plain_listeners_[listener])) return;
  if (tls_conns_.size() <= id.idx) tls_conns_.resize(id.idx + 1);
  tls_conns_[id.idx].session = new_session(id, tls_->default_ctx(), true);
}

std::unique_ptr<tls::Session> EndpointBase::new_session(io::SocketId id, SSL_CTX* ctx,
                                                        bool server) {
  tls::RecordShard* shard = nullptr;
  if (server && cfg_.tls_own_records) {
    if (!record_shard_) record_shard_ = std::make_unique<tls::RecordShard>();
    shard = record_shard_.get();
  }
  // A server's context may be replaced by a reload before the ClientHello arrives: the session
  // keeps it (its SNI callback reads it) until the handshake is done.
  return std::make_unique<tls::Session>(ctx, server, tls_out, this,
                                        std::uint64_t{id.gen} << 32 | id.idx, shard,
                                        server ? tls_ : nullptr);
}

void EndpointBase::tls_out(void* self, std::uint64_t key, const std::byte* data, std::size_t len) {
  io::SocketId id{static_cast<std::uint32_t>(key), static_cast<std::uint32_t>(key >> 32)};
  static_cast<EndpointBase*>(self)->reactor_.write(id, data, len);
}

void EndpointBase::start_client_tls(io::SocketId id, std::string_view host) {
  if (!client_tls_) return;
  if (tls_conns_.size() <= id.idx) tls_conns_.resize(id.idx + 1);
  TlsConn& t = tls_conns_[id.idx];
  t.session = new_session(id, client_tls_, false);
  std::string name(
      host.substr(0, host.rfind(':') == std::string_view::npos ? host.size() : host.rfind(':')));
  SSL_set_tlsext_host_name(t.session->ssl(), name.c_str());
  if (client_resume_ && client_session_) SSL_set_session(t.session->ssl(), client_session_);
  std::size_t n = 0;
  t.session->read(tls_plain_.data(), tls_plain_.size(), n);  // produces the ClientHello
}

void EndpointBase::remember_client_session(tls::Session& s) {
  SSL_SESSION* sess = SSL_get1_session(s.ssl());
  if (!sess) return;
  if (!SSL_SESSION_is_resumable(sess)) {
    SSL_SESSION_free(sess);
    return;
  }
  if (client_session_) SSL_SESSION_free(client_session_);
  client_session_ = sess;
}

void EndpointBase::tls_flush(TlsConn& t, bool close_notify) {
  // A client's upgrade request waits, staged, until its handshake is done.
  if (t.staged && t.session->handshake_done()) {
    // Everything this turn produced, in one go: OpenSSL cuts it into 16 KiB records.
    if (t.session->write(t.staged->data(), t.staged->len) != tls::Session::Result::kOk)
      ++counters_.tls_errors;
    reactor_.pool().release(t.staged);
    t.staged = nullptr;
  }
  if (close_notify) t.session->shutdown();  // after the last data, before our FIN
}

void EndpointBase::on_flush() {
  for (std::uint32_t idx : tls_dirty_) {
    TlsConn& t = tls_conns_[idx];
    t.dirty = false;
    if (t.session) tls_flush(t, false);
  }
  tls_dirty_.clear();
}

void EndpointBase::on_reload() {
  if (tls_loader_) {
    try {
      set_tls(tls_loader_());
      LOG_INFO("tls_reloaded");
    } catch (const std::exception& e) {
      LOG_ERROR("tls_reload_refused", log::kv("error", e.what()),
                log::kv("detail", "the old certificates keep serving"));
    }
  }
  if (config_loader_) {
    reconfigure(config_loader_());
    LOG_INFO("endpoint_config_reloaded");
  }
}

void EndpointBase::close_socket(io::SocketId id) {
  if (TlsConn* t = tls_conn(id)) tls_flush(*t, true);
  reactor_.close(id);
}

}  // namespace wsedge::ws
