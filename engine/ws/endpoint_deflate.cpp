// permessage-deflate in the endpoint (docs/DEFLATE.md): negotiation at the upgrade (both roles),
// inflating what arrives compressed, compressing what is sent, and the variants of a message
// prepared once for many connections. The codec (engine/deflate/) and the negotiation
// (engine/protocol/permessage_deflate.*) know nothing of connections; this file joins them to
// the endpoint's. Connections that did not negotiate it pay one emptiness check per message.
#include <new>

#include "endpoint_base.hpp"
#include "engine/protocol/utf8.hpp"

namespace wsedge::ws {

using protocol::Opcode;

void EndpointBase::ensure_deflate() {
  if (codec_) return;
  codec_ = std::make_unique<deflate::Codec>(cfg_.deflate.level);
}

std::string_view EndpointBase::negotiate(io::SocketId id, const protocol::UpgradeRequest& req,
                                         const UpgradeDecision& d, std::span<char, 128> out) {
  DeflateMode mode = d.deflate == DeflateMode::kDefault ? cfg_.deflate.mode : d.deflate;
  if (!d.extensions.empty() || mode == DeflateMode::kOff || mode == DeflateMode::kDefault)
    return {};
  bool ctx = mode == DeflateMode::kContextTakeover;
  protocol::DeflateServerPolicy policy{.context_takeover = ctx};
  if (ctx) {
    // Our stream first: every message the connection is sent goes through it, publishes
    // included, where the client's stream only serves what that one client sends.
    std::size_t out_bytes = deflate::DeflateStream::footprint(cfg_.deflate.level, 15);
    policy.send_context_fits = deflate_memory_.fits(out_bytes);
    policy.recv_context_fits = deflate_memory_.fits(deflate::InflateStream::footprint(15) +
                                                    (policy.send_context_fits ? out_bytes : 0));
  }
  protocol::DeflateAgreement a;
  std::string_view answer;
  if (!protocol::negotiate_deflate(req, policy, a, out, answer)) return {};
  if (!policy.send_context_fits || !policy.recv_context_fits) {
    // Count only what the budget took away, not what the client itself declined.
    protocol::DeflateAgreement want;
    char ignored[protocol::kMaxDeflateAnswer];
    std::string_view unused;
    protocol::negotiate_deflate(req, {.context_takeover = true}, want, ignored, unused);
    counters_.deflate_context_refused +=
        (want.send_context && !a.send_context) + (want.recv_context && !a.recv_context);
  }
  return agree(id, a) ? answer : std::string_view{};
}

bool EndpointBase::accept_answer(io::SocketId id, std::string_view extensions) {
  DeflateMode offered =
      id.idx < deflate_conns_.size() ? deflate_conns_[id.idx].offered : DeflateMode::kDefault;
  // Without an offer, any extension answered is the server's error (RFC 6455 §4.1).
  if (offered == DeflateMode::kDefault) return extensions.empty();
  protocol::DeflateAgreement a;
  switch (
      protocol::accept_deflate_answer(extensions, offered == DeflateMode::kContextTakeover, a)) {
    case protocol::DeflateAnswer::kNone:
      return true;
    case protocol::DeflateAnswer::kInvalid:
      return false;
    case protocol::DeflateAnswer::kAccepted:
      break;
  }
  if (!agree(id, a)) return false;
  ++counters_.deflate_negotiated;
  return true;
}

bool EndpointBase::agree(io::SocketId id, const protocol::DeflateAgreement& a) {
  ensure_deflate();
  if (deflate_conns_.size() <= id.idx) deflate_conns_.resize(id.idx + 1);
  DeflateConn& dc = deflate_conns_[id.idx];
  if (a.send_context || a.recv_context) {
    // zlib allocates here, not per message; a machine out of memory refuses this connection
    // rather than the whole core.
    try {
      dc.streams = std::make_unique<ContextStreams>();
      if (a.send_context)
        dc.streams->out = std::make_unique<deflate::DeflateStream>(
            cfg_.deflate.level, a.send_window_bits, deflate_memory_);
      // A peer told 8 bits that deflates with zlib gets 9 (zlib has no raw 256-byte window and
      // older ones quietly widened it): an 8-bit inflater would refuse its distances.
      if (a.recv_context)
        dc.streams->in = std::make_unique<deflate::InflateStream>(
            std::max<int>(a.recv_window_bits, 9), deflate_memory_);
    } catch (const std::bad_alloc&) {
      dc.streams.reset();
      counters_.deflate_context_bytes.set(deflate_memory_.used);
      LOG_WARN_LIMITED(1, "deflate_context_alloc_failed", log::kv("bytes", deflate_memory_.used));
      return false;
    }
    counters_.deflate_context_bytes.set(deflate_memory_.used);
  }
  dc.send_bits = a.send_window_bits;
  conns_[id.idx].rsv |= protocol::kRsv1;
  return true;
}

void EndpointBase::end_deflate(std::uint32_t idx) {
  if (idx >= deflate_conns_.size()) return;
  bool streams = deflate_conns_[idx].streams != nullptr;
  deflate_conns_[idx] = DeflateConn{};
  if (streams) counters_.deflate_context_bytes.set(deflate_memory_.used);
}

bool EndpointBase::inflate_message(io::SocketId id, protocol::ReadResult& r,
                                   memory::Buffer*& held) {
  DeflateConn& dc = deflate_conns_[id.idx];
  if (!(r.rsv & protocol::kRsv1)) {
    // The reader's limit has room for deflate's overhead on compressed messages (limits()); an
    // uncompressed one still meets the limit itself.
    if (r.payload.size() <= cfg_.max_message) return true;
    return fail_message(id, protocol::close_code::kMessageTooBig, "message too big");
  }
  deflate::InflateResult res =
      dc.streams && dc.streams->in
          ? dc.streams->in->inflate(r.payload, cfg_.max_message, reactor_.pool(), held)
          : codec_->inflate(r.payload, cfg_.max_message, reactor_.pool(), held);
  if (res == deflate::InflateResult::kTooBig) {
    ++counters_.inflate_too_big;
    return fail_message(id, protocol::close_code::kMessageTooBig, "message too big when inflated");
  }
  if (res == deflate::InflateResult::kCorrupt) {
    ++counters_.inflate_errors;
    return fail_message(id, protocol::close_code::kProtocolError, "invalid compressed data");
  }
  ++counters_.messages_inflated;
  counters_.inflate_in_bytes += r.payload.size();
  counters_.inflate_out_bytes += held->len;
  r.payload = {held->data(), held->len};
  r.rsv = 0;
  // The reader left a compressed text's UTF-8 to whoever undid the compression (RFC 7692 §8).
  if (r.opcode == Opcode::kText && !protocol::Utf8Validator::valid(held->data(), held->len)) {
    reactor_.pool().release(held);
    held = nullptr;
    return fail_message(id, protocol::close_code::kInvalidPayload, "invalid UTF-8");
  }
  return true;
}

bool EndpointBase::fail_message(io::SocketId id, std::uint16_t code, const char* why) {
  protocol::ReadResult failed{};
  failed.code = code;
  failed.error = why;
  count_failure(failed);
  send_close(id, code, why);
  end(id, code, why, Ending::kGraceful);
  return false;
}

std::span<const std::byte> EndpointBase::maybe_compress(io::SocketId id, Opcode op,
                                                        std::span<const std::byte> payload,
                                                        bool fin, std::uint8_t& rsv) {
  DeflateConn* dc = deflate_conn(id);
  // A message sent in fragments goes uncompressed: compressing it would need a stream per
  // connection across the application's calls, which is what no context takeover avoids.
  if (!dc || rsv || !fin || (op != Opcode::kText && op != Opcode::kBinary) ||
      payload.size() < cfg_.deflate.min_size)
    return payload;
  std::span<const std::byte> z;
  if (dc->streams && dc->streams->out) {
    z = dc->streams->out->compress(payload, *codec_);
  } else {
    z = codec_->compress(payload, dc->send_bits);
    if (z.empty()) return payload;  // not smaller, or no compressor keeps to the peer's window
  }
  rsv = protocol::kRsv1;
  ++counters_.messages_deflated;
  counters_.deflate_in_bytes += payload.size();
  counters_.deflate_out_bytes += z.size();
  return z;
}

PreparedMessage EndpointBase::prepare_message(Opcode op, std::span<const std::byte> payload) {
  PreparedMessage m;
  m.op = op;
  m.payload = payload;
  m.plain = prepare_frame(op, payload);
  return m;
}

SendResult EndpointBase::send_prepared(io::SocketId id, PreparedMessage& m) {
  DeflateConn* dc = deflate_conn(id);
  if (!dc || !m.plain || (conns_[id.idx].flags & kClient) ||
      protocol::is_control(static_cast<std::uint8_t>(m.op)) ||
      m.payload.size() < cfg_.deflate.min_size || !is_open(id))
    return send_prepared(id, m.plain);
  // A peer with our context takeover keeps one inflate window across messages and may not read
  // on past a final block, which the shared frames end in (Python's websockets stops there):
  // its own stream compresses the message, as any send.
  if (dc->streams && dc->streams->out) return send(id, m.op, m.payload, true, 0);
  // One compressed frame per window the subscribers need: a payload no longer than the
  // smallest window refers back no further than itself, so one frame serves every window.
  int bits = m.payload.size() <= 256 ? 15 : dc->send_bits;
  std::uint8_t bit = static_cast<std::uint8_t>(1u << (bits - 8));
  memory::Buffer*& z = m.deflated[bits - 8];
  if (!(m.tried & bit)) {
    m.tried |= bit;
    std::span<const std::byte> c = codec_->compress(m.payload, bits);
    if (!c.empty()) z = prepare_frame(m.op, c, protocol::kRsv1);
  }
  if (!z) return send_prepared(id, m.plain);
  SendResult r = queue_prepared(id, z);
  if (r != SendResult::kOk) return r;
  ++counters_.messages_deflated;
  counters_.deflate_in_bytes += m.payload.size();
  counters_.deflate_out_bytes += z->len - protocol::frame_header_size(z->data());
  // The application's payload, as send() counts it: not the variant's compressed bytes.
  return sent(id, m.payload.size());
}

void EndpointBase::release_prepared(PreparedMessage& m) {
  for (memory::Buffer*& b : m.deflated) {
    if (b) reactor_.pool().release(b);
    b = nullptr;
  }
  if (m.plain) reactor_.pool().release(m.plain);
  m.plain = nullptr;
  m.tried = 0;
}

}  // namespace wsedge::ws
