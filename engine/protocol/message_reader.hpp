#pragma once
// Turns the bytes of one WebSocket connection into messages and control frames. Pure: no
// sockets, no clocks. The caller hands it whatever bytes arrived; each call returns at most one
// event. A frame wholly inside the caller's bytes is delivered as a view into them, unmasked in
// place (zero copy); frames split across reads and fragmented messages are assembled in pooled
// buffers. Text is validated incrementally, so invalid UTF-8 fails on its first bad byte.
//
// Extensions: a text message whose first frame carries RSV bits (ReadResult::rsv) holds
// transformed bytes, e.g. compressed by permessage-deflate, so the reader does NOT validate its
// UTF-8: the caller must, after undoing the transformation, with Utf8Validator (feed() and
// complete() chunk by chunk, or Utf8Validator::valid() for a whole buffer), and fail with 1007.
#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/memory/buffer_pool.hpp"
#include "frame.hpp"
#include "utf8.hpp"

namespace wsedge::protocol {

// The kFail error of a message refused by the assembly budget, for the caller to count apart
// from messages over max_message (both close with 1009).
inline constexpr const char kBudgetExhausted[] = "message assembly budget exhausted";

// Bytes held by unfinished messages over all the readers of a core (one per core, like the
// pool): without it, many connections each holding a message just under max_message take the
// process to gigabytes. Each reader charges the capacity of the pooled buffer it assembles a
// message in, from when it reserves it until it lets go of it.
struct AssemblyBudget {
  std::uint64_t limit;
  std::uint64_t used = 0;
};

// Pass the same limits on every call for a connection.
struct ReaderLimits {
  std::uint64_t max_message;  // bytes; a larger message fails with 1009
  bool expect_masked;         // true for a server (clients must mask), false for a client
  // RSV bits an accepted extension lets the first frame of a data message carry (0x40 for
  // permessage-deflate). Any other RSV bit, or any on a continuation or control frame, fails
  // with 1002 (RFC 7692 §6).
  std::uint8_t allowed_rsv = 0;
  // Frames per data message, 0 for no limit; one more fails with 1009: a message sent as a
  // million 1-byte fragments costs a header parse and a copy each.
  std::uint32_t max_fragments = 0;
  // Null for none. A reservation that takes `used` past `limit` fails the message with 1009
  // "message assembly budget exhausted" (and the reader lets go of its buffer at once).
  AssemblyBudget* budget = nullptr;
};

enum class ReadEvent : std::uint8_t {
  kNeedMore,  // every byte given was consumed; nothing to deliver yet
  kMessage,   // a complete text or binary message
  kPing,
  kPong,
  kClose,  // the peer's Close frame, already validated
  kFail,   // protocol violation: send Close with `code`, then close the connection
};

struct ReadResult {
  ReadEvent event;
  Opcode opcode;                 // kText or kBinary for messages
  std::uint16_t code;            // close code received (kClose) or to send (kFail)
  std::size_t consumed;          // bytes of the input used by this call
  std::span<std::byte> payload;  // message, ping/pong payload, or close reason
  const char* error;             // kFail: what was wrong, for logs and the Close reason
  std::uint8_t rsv;              // kMessage: RSV bits of its first frame (see above); else 0
};

class MessageReader {
 public:
  // Payload views stay valid until the next call to next() or release().
  // After kFail the reader has already given back its pooled storage.
  ReadResult next(std::byte* data, std::size_t len, const ReaderLimits& limits,
                  memory::BufferPool& pool);
  // Gives back any pooled storage; partial messages are dropped. For connection teardown.
  void release(memory::BufferPool& pool);
  // Gives back storage of messages already delivered; call once a read's bytes are processed.
  void release_delivered(memory::BufferPool& pool);
  // A reference to the pooled buffer of the message just delivered when `payload` is exactly
  // that message (else null), for its new holder to release. The reader keeps its own until
  // release_delivered(), so the payload stays valid whatever the new holder does meanwhile; the
  // buffer stops counting against the AssemblyBudget when the reader lets go of it.
  memory::Buffer* take_delivered(std::span<const std::byte> payload);
  bool failed() const { return state_ == kFailed; }
  // Part of a frame has arrived and the rest has not: a header begun, or payload still to
  // come. False between frames (even inside a fragmented message). For receive deadlines: a
  // peer that stops mid-frame is stalling, one that stops between frames is idle.
  bool mid_frame() const { return hdr_have_ > 0 || state_ == kPayload; }

 private:
  enum State : std::uint8_t { kHeader, kPayload, kFailed };

  ReadResult read(std::byte* data, std::size_t len, const ReaderLimits& limits,
                  memory::BufferPool& pool);
  void drop_message(memory::BufferPool& pool);
  ReadResult fail(std::uint16_t code, const char* why, std::size_t used);
  ReadResult begin_frame(const FrameHeader& h, const ReaderLimits& limits, std::size_t used);
  ReadResult finish_control(std::span<std::byte> payload, std::size_t used);

  memory::Buffer* msg_ = nullptr;     // data message being assembled
  memory::Buffer* ctl_ = nullptr;     // control frame split across reads
  AssemblyBudget* budget_ = nullptr;  // what msg_'s capacity is charged to; null when nothing
  std::uint64_t frame_left_ = 0;      // payload bytes of the current frame still to come
  std::uint32_t mask_ = 0;
  std::uint32_t fragments_ = 0;  // frames of the message in progress
  std::byte hdr_[kMaxFrameHeader];
  std::uint8_t hdr_have_ = 0;
  State state_ = kHeader;
  std::uint8_t frame_op_ = 0;
  bool frame_fin_ = false;
  bool frame_started_ = false;   // some of the current frame's payload has been consumed
  std::uint8_t mask_phase_ = 0;  // payload bytes consumed so far, mod 4
  std::uint8_t msg_op_ = 0;      // opcode of the message in progress; 0 when none
  std::uint8_t msg_rsv_ = 0;     // RSV bits of its first frame
  bool delivered_ = false;       // msg_/ctl_ hold a payload already handed out
  Utf8Validator utf8_;
};

}  // namespace wsedge::protocol
