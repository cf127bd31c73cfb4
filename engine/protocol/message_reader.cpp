#include "message_reader.hpp"

#include <algorithm>
#include <cstring>

#include "close_code.hpp"
#include "unmask.hpp"

namespace wsedge::protocol {

using memory::Buffer;
using memory::BufferPool;

void MessageReader::drop_message(BufferPool& pool) {
  if (budget_) {
    budget_->used -= msg_->capacity();
    budget_ = nullptr;
  }
  pool.release(msg_);
  msg_ = nullptr;
}

void MessageReader::release(BufferPool& pool) {
  if (msg_) drop_message(pool);
  if (ctl_) pool.release(ctl_);
  ctl_ = nullptr;
  delivered_ = false;
}

void MessageReader::release_delivered(BufferPool& pool) {
  if (!delivered_) return;
  delivered_ = false;
  // A delivered control frame may have interrupted a fragmented message: keep that message.
  if (msg_ && msg_op_ == 0) drop_message(pool);
  if (ctl_) {
    pool.release(ctl_);
    ctl_ = nullptr;
  }
}

Buffer* MessageReader::take_delivered(std::span<const std::byte> payload) {
  // One other holder at most: a buffer can sit in one output queue only.
  if (!delivered_ || !msg_ || msg_op_ != 0 || msg_->refs > 1 || payload.data() != msg_->data() ||
      payload.size() != msg_->len)
    return nullptr;
  return BufferPool::share(msg_);
}

ReadResult MessageReader::fail(std::uint16_t code, const char* why, std::size_t used) {
  state_ = kFailed;
  return {ReadEvent::kFail, Opcode::kClose, code, used, {}, why, 0};
}

ReadResult MessageReader::begin_frame(const FrameHeader& h, const ReaderLimits& limits,
                                      std::size_t used) {
  std::uint8_t op = h.opcode;
  // An extension's bits belong on the first frame of a data message only (RFC 7692 §6).
  if (h.rsv && (is_control(op) || op == 0 || (h.rsv & ~limits.allowed_rsv)))
    return fail(close_code::kProtocolError, "reserved bits set", used);
  if (is_control(op)) {
    if (op > static_cast<std::uint8_t>(Opcode::kPong))
      return fail(close_code::kProtocolError, "reserved opcode", used);
    if (!h.fin) return fail(close_code::kProtocolError, "fragmented control frame", used);
    if (h.payload_len > kMaxControlPayload)
      return fail(close_code::kProtocolError, "control frame over 125 bytes", used);
  } else {
    if (op > static_cast<std::uint8_t>(Opcode::kBinary))
      return fail(close_code::kProtocolError, "reserved opcode", used);
    if (op == 0 && msg_op_ == 0)
      return fail(close_code::kProtocolError, "continuation frame without a message", used);
    if (op != 0 && msg_op_ != 0)
      return fail(close_code::kProtocolError, "new message inside a fragmented one", used);
    std::uint64_t so_far = (op == 0 && msg_) ? msg_->len : 0;
    if (h.payload_len > limits.max_message || so_far + h.payload_len > limits.max_message)
      return fail(close_code::kMessageTooBig, "message too big", used);
    if (op != 0) {
      msg_op_ = op;
      msg_rsv_ = h.rsv;
      fragments_ = 1;
      utf8_.reset();
    } else if (++fragments_ > limits.max_fragments && limits.max_fragments != 0) {
      return fail(close_code::kMessageTooBig, "too many fragments", used);
    }
  }
  if (h.masked != limits.expect_masked)
    return fail(close_code::kProtocolError,
                limits.expect_masked ? "unmasked client frame" : "masked server frame", used);
  frame_op_ = op;
  frame_fin_ = h.fin;
  mask_ = h.mask_key;
  frame_left_ = h.payload_len;
  frame_started_ = false;
  mask_phase_ = 0;
  state_ = kPayload;
  return {ReadEvent::kNeedMore, Opcode::kContinuation, 0, used, {}, nullptr};
}

ReadResult MessageReader::finish_control(std::span<std::byte> payload, std::size_t used) {
  auto op = static_cast<Opcode>(frame_op_);
  if (op == Opcode::kPing) return {ReadEvent::kPing, op, 0, used, payload, nullptr};
  if (op == Opcode::kPong) return {ReadEvent::kPong, op, 0, used, payload, nullptr};
  CloseBody body;
  switch (parse_close_body(payload.data(), payload.size(), body)) {
    case CloseParse::kOk:
      break;
    case CloseParse::kBadLength:
      return fail(close_code::kProtocolError, "close frame with a 1-byte body", used);
    case CloseParse::kBadCode:
      return fail(close_code::kProtocolError, "invalid close code", used);
    case CloseParse::kBadUtf8:
      return fail(close_code::kInvalidPayload, "close reason is not UTF-8", used);
  }
  auto* r = reinterpret_cast<std::byte*>(const_cast<char*>(body.reason.data()));
  return {ReadEvent::kClose, op, body.code, used, {r, body.reason.size()}, nullptr};
}

ReadResult MessageReader::next(std::byte* data, std::size_t len, const ReaderLimits& limits,
                               BufferPool& pool) {
  ReadResult r = read(data, len, limits, pool);
  // A failed connection only closes: its buffers, and their share of the assembly budget,
  // go back now rather than at teardown, which may be a slow Close handshake away.
  if (r.event == ReadEvent::kFail) release(pool);
  return r;
}

ReadResult MessageReader::read(std::byte* data, std::size_t len, const ReaderLimits& limits,
                               BufferPool& pool) {
  release_delivered(pool);
  std::size_t used = 0;
  for (;;) {
    if (state_ == kFailed) return {ReadEvent::kNeedMore, Opcode::kClose, 0, len, {}, nullptr};
    if (state_ == kHeader) {
      FrameHeader h;
      HeaderParse st;
      if (hdr_have_ == 0) {
        st = parse_frame_header(data + used, len - used, h);
        if (st == HeaderParse::kNeedMore) {
          std::memcpy(hdr_, data + used, len - used);
          hdr_have_ = static_cast<std::uint8_t>(len - used);
          return {ReadEvent::kNeedMore, Opcode::kContinuation, 0, len, {}, nullptr};
        }
        used += h.size;
      } else {
        // The header began in an earlier read: complete it byte-exactly, never past its end.
        std::size_t want = hdr_have_ < 2 ? 2 : frame_header_size(hdr_);
        while (hdr_have_ < want && used < len) {
          std::size_t take = std::min(want - hdr_have_, len - used);
          std::memcpy(hdr_ + hdr_have_, data + used, take);
          hdr_have_ = static_cast<std::uint8_t>(hdr_have_ + take);
          used += take;
          if (hdr_have_ == 2 && want == 2) want = frame_header_size(hdr_);
        }
        if (hdr_have_ < want)
          return {ReadEvent::kNeedMore, Opcode::kContinuation, 0, len, {}, nullptr};
        st = parse_frame_header(hdr_, hdr_have_, h);
        hdr_have_ = 0;
      }
      if (st != HeaderParse::kOk)
        return fail(close_code::kProtocolError,
                    st == HeaderParse::kBadLength ? "64-bit length with the top bit set"
                                                  : "length not minimally encoded",
                    len);
      ReadResult r = begin_frame(h, limits, used);
      if (r.event == ReadEvent::kFail) return r;
    }

    // Payload of the current frame: as much of it as this read holds.
    std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(frame_left_, len - used));
    std::byte* p = data + used;
    bool control = is_control(frame_op_);
    bool zero_copy =
        !frame_started_ && take == frame_left_ && (control || (frame_fin_ && frame_op_ != 0));
    if (!zero_copy && !control) {
      // Assembled data is unmasked while it is copied. The header told us the frame's length:
      // room for all of it now means the payload is copied once, never again as it grows.
      std::size_t had = msg_ ? msg_->capacity() : 0;
      msg_ = pool.reserve(msg_, frame_left_);
      if (limits.budget && msg_->capacity() != had) {
        // A grown buffer replaced the old one, whose charge it inherits: only growth is new.
        budget_ = limits.budget;
        budget_->used += msg_->capacity() - had;
        if (budget_->used > budget_->limit)
          return fail(close_code::kMessageTooBig, kBudgetExhausted, used);
      }
      std::byte* dst = msg_->data() + msg_->len;
      // begin_frame let through only frames masked exactly when expect_masked.
      if (limits.expect_masked)
        copy_masked(dst, p, take, mask_, mask_phase_);
      else
        std::memcpy(dst, p, take);
      msg_->len += static_cast<std::uint32_t>(take);
      p = dst;
    } else if (limits.expect_masked) {
      apply_mask(p, take, mask_, mask_phase_);
    }
    // Text with RSV bits is transformed (e.g. compressed): its caller validates it once restored.
    bool check_utf8 = msg_op_ == static_cast<std::uint8_t>(Opcode::kText) && msg_rsv_ == 0;
    if (!control && check_utf8 && !utf8_.feed(p, take))
      return fail(close_code::kInvalidPayload, "invalid UTF-8 in text message", used + take);
    if (control && !zero_copy) ctl_ = pool.append(ctl_, p, take);
    used += take;
    frame_left_ -= take;
    frame_started_ = true;
    mask_phase_ = static_cast<std::uint8_t>((mask_phase_ + take) & 3);
    if (frame_left_ > 0) return {ReadEvent::kNeedMore, Opcode::kContinuation, 0, used, {}, nullptr};
    state_ = kHeader;

    if (control) {
      std::span<std::byte> payload{p, take};
      if (!zero_copy) {
        payload = {ctl_->data(), ctl_->len};
        delivered_ = true;
      }
      return finish_control(payload, used);
    }
    if (!frame_fin_) continue;
    auto op = static_cast<Opcode>(msg_op_);
    msg_op_ = 0;
    if (check_utf8 && !utf8_.complete())
      return fail(close_code::kInvalidPayload, "text message ends inside a UTF-8 sequence", used);
    std::span<std::byte> payload{p, take};
    if (!zero_copy) {
      payload = {msg_->data(), msg_->len};
      delivered_ = true;
    }
    return {ReadEvent::kMessage, op, 0, used, payload, nullptr, msg_rsv_};
  }
}

}  // namespace wsedge::protocol
