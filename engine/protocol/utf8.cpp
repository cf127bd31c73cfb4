#include "utf8.hpp"

#include <emmintrin.h>

#include <array>

namespace wsedge::protocol {
namespace {

// Byte classes: which lead or continuation ranges of RFC 3629's table a byte falls in.
enum Class : std::uint8_t {
  kAscii,    // 00..7F
  kCont80,   // 80..8F
  kCont90,   // 90..9F
  kContA0,   // A0..BF
  kInvalid,  // C0, C1, F5..FF
  kLead2,    // C2..DF
  kLeadE0,   // E0: next must be A0..BF (no overlongs)
  kLead3,    // E1..EC, EE, EF
  kLeadED,   // ED: next must be 80..9F (no surrogates)
  kLeadF0,   // F0: next must be 90..BF (no overlongs)
  kLead4,    // F1..F3
  kLeadF4,   // F4: next must be 80..8F (nothing above U+10FFFF)
  kClassCount
};

constexpr std::array<std::uint8_t, 256> make_classes() {
  std::array<std::uint8_t, 256> c{};
  for (int b = 0; b < 256; ++b) {
    if (b < 0x80)
      c[b] = kAscii;
    else if (b < 0x90)
      c[b] = kCont80;
    else if (b < 0xA0)
      c[b] = kCont90;
    else if (b < 0xC0)
      c[b] = kContA0;
    else if (b < 0xC2)
      c[b] = kInvalid;
    else if (b < 0xE0)
      c[b] = kLead2;
    else if (b == 0xE0)
      c[b] = kLeadE0;
    else if (b == 0xED)
      c[b] = kLeadED;
    else if (b < 0xF0)
      c[b] = kLead3;
    else if (b == 0xF0)
      c[b] = kLeadF0;
    else if (b < 0xF4)
      c[b] = kLead4;
    else if (b == 0xF4)
      c[b] = kLeadF4;
    else
      c[b] = kInvalid;
  }
  return c;
}

// States: 0 accept, 1..3 continuation bytes still needed, 4..7 the constrained second byte
// after E0, ED, F0, F4, 8 reject (absorbing).
constexpr std::uint8_t R = Utf8Validator::kReject;
constexpr std::uint8_t kTransitions[9][kClassCount] = {
    // Ascii C80 C90 CA0 Inv L2 E0 L3 ED F0 L4 F4
    {0, R, R, R, R, 1, 4, 2, 5, 6, 3, 7},  // 0 accept
    {R, 0, 0, 0, R, R, R, R, R, R, R, R},  // 1 one more continuation
    {R, 1, 1, 1, R, R, R, R, R, R, R, R},  // 2 two more
    {R, 2, 2, 2, R, R, R, R, R, R, R, R},  // 3 three more
    {R, R, R, 1, R, R, R, R, R, R, R, R},  // 4 after E0
    {R, 1, 1, R, R, R, R, R, R, R, R, R},  // 5 after ED
    {R, R, 2, 2, R, R, R, R, R, R, R, R},  // 6 after F0
    {R, 2, R, R, R, R, R, R, R, R, R, R},  // 7 after F4
    {R, R, R, R, R, R, R, R, R, R, R, R},  // 8 reject
};

constexpr auto kClasses = make_classes();

}  // namespace

bool Utf8Validator::feed(const std::byte* data, std::size_t len) {
  auto* p = reinterpret_cast<const std::uint8_t*>(data);
  std::size_t i = 0;
  std::uint8_t s = state_;
  while (i < len) {
    // Text is mostly ASCII: skip 16 bytes at a time while between characters.
    if (s == kAccept) {
      while (i + 16 <= len) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
        if (_mm_movemask_epi8(v) != 0) break;
        i += 16;
      }
      if (i == len) break;
    }
    s = kTransitions[s][kClasses[p[i]]];
    if (s == kReject) {
      state_ = s;
      return false;
    }
    ++i;
  }
  state_ = s;
  return true;
}

}  // namespace wsedge::protocol
