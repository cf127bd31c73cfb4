#pragma once
// Helpers shared by the protocol tests: byte strings and client-side frame building.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/protocol/frame.hpp"
#include "engine/protocol/unmask.hpp"

namespace wsedge::test {

using Bytes = std::vector<std::byte>;

inline Bytes bytes(std::string_view s) {
  Bytes b(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) b[i] = static_cast<std::byte>(s[i]);
  return b;
}

inline Bytes bytes(std::initializer_list<int> v) {
  Bytes b;
  for (int x : v) b.push_back(static_cast<std::byte>(x));
  return b;
}

inline std::string str(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// A frame as a client sends it: masked with a fixed key unless `masked` is false.
inline Bytes frame(int opcode, std::string_view payload, bool fin = true, bool masked = true,
                   int rsv = 0) {
  Bytes out(protocol::kMaxFrameHeader);
  std::uint32_t key = 0x3DA1F237;
  std::size_t n =
      protocol::write_frame_header(out.data(), fin, static_cast<protocol::Opcode>(opcode & 0xF),
                                   payload.size(), masked ? &key : nullptr);
  out[0] = static_cast<std::byte>((static_cast<int>(out[0]) & 0x80) | rsv | opcode);
  out.resize(n);
  Bytes p = bytes(payload);
  if (masked) protocol::apply_mask(p.data(), p.size(), key);
  out.insert(out.end(), p.begin(), p.end());
  return out;
}

inline Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace wsedge::test
