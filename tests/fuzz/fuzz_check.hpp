#pragma once
// Helpers shared by the fuzz targets: a hard invariant check and a reference UTF-8 validator
// written for clarity, not speed, to judge the production one against.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace wsedge::fuzz {

// An invariant violation is a crash libFuzzer saves and reports, whatever NDEBUG says.
inline void check(bool ok) {
  if (!ok) __builtin_trap();
}

// True when `v` lies within [begin, end): a non-empty view wholly inside, an empty one null or
// pointing inside (or just past the end).
inline bool inside(std::string_view v, const char* begin, const char* end) {
  if (v.empty()) return v.data() == nullptr || (v.data() >= begin && v.data() <= end);
  return v.data() >= begin && v.data() + v.size() <= end;
}

// RFC 3629, decoding code point by code point: a lead byte announces 1-4 bytes, the rest must
// be 10xxxxxx, and the value must need that many bytes (no overlongs), not be a UTF-16
// surrogate (U+D800..U+DFFF) and not exceed U+10FFFF.
struct Utf8Ref {
  bool valid;            // the whole input is UTF-8
  bool prefix;           // some continuation would make it UTF-8 (valid implies prefix)
  std::size_t boundary;  // end of the last complete character
};

inline Utf8Ref utf8_reference(const std::uint8_t* s, std::size_t n) {
  std::size_t i = 0;
  while (i < n) {
    std::uint8_t c = s[i];
    std::size_t len;
    std::uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07;
    } else {
      return {false, false, i};
    }
    std::size_t have = n - i < len ? n - i : len;
    for (std::size_t k = 1; k < have; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return {false, false, i};
      cp = cp << 6 | (s[i + k] & 0x3F);
    }
    // The values the bytes seen so far still allow: [lo, hi] (one value when all are there).
    std::uint32_t lo = cp << (6 * (len - have)), hi = lo | ((1u << (6 * (len - have))) - 1);
    const std::uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    const std::uint32_t max = len == 2 ? 0x7FF : len == 3 ? 0xFFFF : 0x10FFFF;
    if (lo < min) lo = min;
    if (hi > max) hi = max;
    bool possible = lo <= hi && !(lo >= 0xD800 && hi <= 0xDFFF);
    if (!possible) return {false, false, i};
    if (have < len) return {false, true, i};  // cut inside a character that could still be valid
    i += len;
  }
  return {true, true, n};
}

}  // namespace wsedge::fuzz
