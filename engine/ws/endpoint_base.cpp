#include "endpoint_base.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

#include "engine/log.hpp"
#include "engine/protocol/close_code.hpp"
#include "engine/protocol/unmask.hpp"

namespace wsedge::ws {

using protocol::Opcode;

EndpointBase::~EndpointBase() {
  if (client_session_) SSL_SESSION_free(client_session_);
}

EndpointBase::EndpointBase(io::Reactor& reactor, const EndpointConfig& cfg)
    : reactor_(reactor), cfg_(cfg), assembly_{cfg.max_assembly_bytes} {
  conns_.reserve(reactor.config().max_connections);
  tls_plain_.resize(kTlsRecord);  // one record's plaintext at most
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&mask_state_), sizeof mask_state_) != 1 ||
      mask_state_ == 0)
    mask_state_ = 0x9E3779B97F4A7C15ull;
}

EndpointBase::Conn& EndpointBase::start(io::SocketId id, Phase phase, std::uint8_t flags,
                                        std::uint32_t timer_ms) {
  if (id.idx >= conns_.size()) conns_.resize(id.idx + 1);
  reset(id);  // a slot reused before its previous connection's storage was given back
  Conn& c = conns_[id.idx];
  c.phase = phase;
  c.flags = flags;
  if (timer_ms) reactor_.set_timer(id, timer_ms);
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
  c.phase = kDone;
  if (known) on_close_hook_(this, id, code, reason);
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
  write_frame(id, c.flags & kClient, op, payload, fin, rsv);
  return sent(id);
}

SendResult EndpointBase::sent(io::SocketId id) {
  ++counters_.messages_out;
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
  return sent(id);
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
    LOG_WARN("msg=\"refusal headers too long; sent without them\" core=%u bytes=%zu",
             reactor_.core(), headers.size());
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
    LOG_ERROR("msg=\"static page content type too long\" core=%u path=%.*s", reactor_.core(),
              static_cast<int>(path.size()), path.data());
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

void EndpointBase::accept_upgrade(io::SocketId id, std::string_view key, const UpgradeDecision& d) {
  char out[protocol::kMaxResponseFixed + kMaxAnswerExtras];
  std::size_t n = protocol::write_switching_protocols(out, sizeof out, key, d.protocol,
                                                      d.extensions, d.headers);
  if (n == 0) {
    // An answer that does not fit is the application's bug; the client must not get a 101
    // without the extension or protocol it was promised.
    LOG_ERROR("msg=\"upgrade answer too long; refused\" core=%u bytes=%zu", reactor_.core(),
              d.protocol.size() + d.extensions.size() + d.headers.size());
    refuse(id, 500, "upgrade answer too long");
    return;
  }
  emit(id, out, n);
  ++counters_.handshakes;
  Conn& c = conns_[id.idx];
  c.phase = kOpen;
  c.rsv = d.rsv;
  arm_keepalive(id);
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
  char out[2048];
  std::size_t n = protocol::write_upgrade_request(out, sizeof out, host, target,
                                                  {key.data(), key.size()}, protocols);
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
  return std::make_unique<tls::Session>(ctx, server, tls_out, this,
                                        std::uint64_t{id.gen} << 32 | id.idx);
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
  if (!tls_loader_) return;
  try {
    set_tls(tls_loader_());
    LOG_INFO("msg=\"TLS certificates reloaded\" core=%u", reactor_.core());
  } catch (const std::exception& e) {
    LOG_ERROR("msg=\"TLS reload refused; the old certificates keep serving\" core=%u error=\"%s\"",
              reactor_.core(), e.what());
  }
}

void EndpointBase::close_socket(io::SocketId id) {
  if (TlsConn* t = tls_conn(id)) tls_flush(*t, true);
  reactor_.close(id);
}

}  // namespace wsedge::ws
