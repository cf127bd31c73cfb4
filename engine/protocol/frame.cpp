#include "frame.hpp"

#include <cstring>

namespace wsedge::protocol {

std::size_t frame_header_size(const std::byte* p) {
  auto b1 = static_cast<std::uint8_t>(p[1]);
  std::size_t len7 = b1 & 0x7F;
  std::size_t size = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
  return size + ((b1 & 0x80) ? 4 : 0);
}

HeaderParse parse_frame_header(const std::byte* p, std::size_t len, FrameHeader& h) {
  if (len < 2) return HeaderParse::kNeedMore;
  std::size_t size = frame_header_size(p);
  if (len < size) return HeaderParse::kNeedMore;
  auto b0 = static_cast<std::uint8_t>(p[0]);
  auto b1 = static_cast<std::uint8_t>(p[1]);
  h.fin = (b0 & 0x80) != 0;
  h.rsv = b0 & 0x70;
  h.opcode = b0 & 0x0F;
  h.masked = (b1 & 0x80) != 0;
  h.size = static_cast<std::uint8_t>(size);
  std::uint64_t n = b1 & 0x7F;
  const std::byte* q = p + 2;
  if (n == 126) {
    n = (std::uint64_t{static_cast<std::uint8_t>(q[0])} << 8) | static_cast<std::uint8_t>(q[1]);
    q += 2;
    if (n < 126) return HeaderParse::kNonMinimal;
  } else if (n == 127) {
    n = 0;
    for (int i = 0; i < 8; ++i) n = (n << 8) | static_cast<std::uint8_t>(q[i]);
    q += 8;
    if (n >> 63) return HeaderParse::kBadLength;
    if (n <= 0xFFFF) return HeaderParse::kNonMinimal;
  }
  h.payload_len = n;
  h.mask_key = 0;
  if (h.masked) std::memcpy(&h.mask_key, q, 4);
  return HeaderParse::kOk;
}

std::size_t write_frame_header(std::byte* out, bool fin, Opcode op, std::uint64_t payload_len,
                               const std::uint32_t* mask_key, std::uint8_t rsv) {
  out[0] = static_cast<std::byte>((fin ? 0x80 : 0) | (rsv & 0x70) | static_cast<std::uint8_t>(op));
  std::uint8_t mask_bit = mask_key ? 0x80 : 0;
  std::size_t n = 2;
  if (payload_len < 126) {
    out[1] = static_cast<std::byte>(mask_bit | payload_len);
  } else if (payload_len <= 0xFFFF) {
    out[1] = static_cast<std::byte>(mask_bit | 126);
    out[2] = static_cast<std::byte>(payload_len >> 8);
    out[3] = static_cast<std::byte>(payload_len);
    n = 4;
  } else {
    out[1] = static_cast<std::byte>(mask_bit | 127);
    for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<std::byte>(payload_len >> (56 - 8 * i));
    n = 10;
  }
  if (mask_key) {
    std::memcpy(out + n, mask_key, 4);
    n += 4;
  }
  return n;
}

}  // namespace wsedge::protocol
