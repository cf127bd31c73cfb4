#pragma once
// RFC 6455 §5.2 frame headers: parsing from a byte view and writing into caller storage.
#include <cstddef>
#include <cstdint>

namespace wsedge::protocol {

enum class Opcode : std::uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

constexpr bool is_control(std::uint8_t opcode) {
  return (opcode & 0x8) != 0;
}

struct FrameHeader {
  bool fin;
  std::uint8_t rsv;     // RSV1..3 as the three bits 0x70
  std::uint8_t opcode;  // raw, so reserved opcodes can be reported
  bool masked;
  std::uint32_t mask_key;  // wire-order bytes loaded little-endian, as apply_mask expects
  std::uint64_t payload_len;
  std::uint8_t size;  // header bytes, 2..14
};

constexpr std::size_t kMaxFrameHeader = 14;
// RSV1 as FrameHeader::rsv holds it: permessage-deflate's "compressed" (RFC 7692 §6).
constexpr std::uint8_t kRsv1 = 0x40;
constexpr std::size_t kMaxControlPayload = 125;

// Header length announced by the first two bytes.
std::size_t frame_header_size(const std::byte* p);

enum class HeaderParse : std::uint8_t { kOk, kNeedMore, kBadLength, kNonMinimal };
// kBadLength: a 64-bit length with its most significant bit set (§5.2).
// kNonMinimal: a length in more bytes than it needs (§5.2: "the minimal number of bytes MUST be
// used"), e.g. 5 as a 16-bit length or 200 as a 64-bit one.
HeaderParse parse_frame_header(const std::byte* p, std::size_t len, FrameHeader& h);

// Writes a header for `payload_len` bytes; `mask_key` null for an unmasked (server) frame.
// `rsv`: the RSV bits to set, as in FrameHeader::rsv (0x40 RSV1, 0x20 RSV2, 0x10 RSV3), for an
// extension that gives them a meaning; other bits of `rsv` are ignored.
// Returns the number of bytes written (at most kMaxFrameHeader).
std::size_t write_frame_header(std::byte* out, bool fin, Opcode op, std::uint64_t payload_len,
                               const std::uint32_t* mask_key, std::uint8_t rsv = 0);

}  // namespace wsedge::protocol
