#include "json.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <vector>

namespace wsedge::auth::json {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The four hex digits at s[i, i+4) as a code unit, or -1 (also when they run past the end).
long hex4(std::string_view s, std::size_t i) {
  if (i > s.size() || s.size() - i < 4) return -1;
  long v = 0;
  for (std::size_t k = 0; k < 4; ++k) {
    int h = hex_value(s[i + k]);
    if (h < 0) return -1;
    v = v << 4 | h;
  }
  return v;
}

void put_utf8(std::uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | cp >> 6);
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | cp >> 12);
    out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | cp >> 18);
    out += static_cast<char>(0x80 | (cp >> 12 & 0x3F));
    out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// The escape sequence of a \u at s[i] (i at the 'u'): the code point, and in `len` the bytes it
// took (6 or 12 with a surrogate pair, counting from the backslash). -1 for a bad or lone
// surrogate: it has no UTF-8 form, so a reader handing it on would hand on garbage.
long unicode_escape(std::string_view s, std::size_t i, std::size_t& len) {
  long hi = hex4(s, i + 1);
  if (hi < 0) return -1;
  len = 6;
  if (hi >= 0xDC00 && hi <= 0xDFFF) return -1;
  if (hi < 0xD800 || hi > 0xDBFF) return hi;
  if (s.size() - i < 7 || s[i + 5] != '\\' || s[i + 6] != 'u') return -1;
  long lo = hex4(s, i + 7);
  if (lo < 0xDC00 || lo > 0xDFFF) return -1;
  len = 12;
  return 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
}

// Length of the UTF-8 character starting at s[i] (a byte >= 0x80), or 0 when it is invalid,
// overlong, a surrogate, above U+10FFFF or cut short by the end of s.
std::size_t utf8_char(std::string_view s, std::size_t i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = b(0);
  std::size_t len;
  std::uint32_t cp, min;
  if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (b(k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

// Unescapes the string whose text (with quotes) is `raw`, already validated by the parser.
bool unescape(std::string_view raw, std::string& out) {
  out.clear();
  if (raw.size() < 2 || raw.front() != '"' || raw.back() != '"') return false;
  std::string_view s = raw.substr(1, raw.size() - 2);
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    if (s[i] != '\\') {
      out += s[i++];
      continue;
    }
    if (i + 1 >= s.size()) return false;
    char e = s[i + 1];
    switch (e) {
      case '"':
      case '\\':
      case '/':
        out += e;
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        std::size_t len = 0;
        long cp = unicode_escape(s, i + 1, len);
        if (cp < 0) return false;
        put_utf8(static_cast<std::uint32_t>(cp), out);
        i += len;
        continue;
      }
      default:
        return false;
    }
    i += 2;
  }
  return true;
}

// The member names of one object, for the duplicate check (compared unescaped, so "a" and
// "\u0061" are one name). A token's objects have a few members: they are kept as views of the
// text and compared pairwise, without allocating. Past kFew, or when one is escaped, unescaped
// copies are sorted instead: n log n, not n squared, for a header of thousands of members
// before the signature is checked.
class Names {
 public:
  bool add(std::string_view quoted) {
    escaped_ |= quoted.find('\\') != std::string_view::npos;
    if (copies_.empty() && n_ < kFew && !escaped_) {
      few_[n_++] = quoted;
      return true;
    }
    for (; n_ > 0; --n_) {
      copies_.emplace_back();
      if (!unescape(few_[n_ - 1], copies_.back())) return false;
    }
    copies_.emplace_back();
    return unescape(quoted, copies_.back());
  }
  bool distinct() {
    for (std::size_t i = 0; i < n_; ++i) {
      for (std::size_t j = i + 1; j < n_; ++j) {
        if (few_[i] == few_[j]) return false;
      }
    }
    std::sort(copies_.begin(), copies_.end());
    return std::adjacent_find(copies_.begin(), copies_.end()) == copies_.end();
  }

 private:
  static constexpr std::size_t kFew = 16;
  std::array<std::string_view, kFew> few_;
  std::size_t n_ = 0;
  bool escaped_ = false;
  std::vector<std::string> copies_;
};

// Recursive descent over s from pos. With `strict`, also checks duplicate member names (parse()
// does, once; lookups in an already validated document skip it).
struct Parser {
  std::string_view s;
  std::size_t pos = 0;
  bool strict = true;

  bool at_end() const { return pos >= s.size(); }
  void skip_ws() {
    while (!at_end() && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' || s[pos] == '\r'))
      ++pos;
  }
  bool literal(std::string_view word) {
    if (s.substr(pos, word.size()) != word) return false;
    pos += word.size();
    return true;
  }

  bool string() {
    ++pos;  // the opening quote
    while (!at_end()) {
      unsigned char c = static_cast<unsigned char>(s[pos]);
      if (c == '"') {
        ++pos;
        return true;
      }
      if (c < 0x20) return false;  // control characters must be escaped (RFC 8259 §7)
      if (c == '\\') {
        if (pos + 1 >= s.size()) return false;
        char e = s[pos + 1];
        if (e == 'u') {
          std::size_t len = 0;
          if (unicode_escape(s, pos + 1, len) < 0) return false;
          pos += len;
        } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                   e == 'r' || e == 't') {
          pos += 2;
        } else {
          return false;
        }
      } else if (c >= 0x80) {
        std::size_t len = utf8_char(s, pos);
        if (len == 0) return false;
        pos += len;
      } else {
        ++pos;
      }
    }
    return false;
  }

  bool digits() {
    std::size_t start = pos;
    while (!at_end() && is_digit(s[pos])) ++pos;
    return pos > start;
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool number() {
    if (s[pos] == '-') ++pos;
    if (at_end()) return false;
    if (s[pos] == '0') {
      ++pos;
    } else if (!digits()) {
      return false;
    }
    if (!at_end() && s[pos] == '.') {
      ++pos;
      if (!digits()) return false;
    }
    if (!at_end() && (s[pos] == 'e' || s[pos] == 'E')) {
      ++pos;
      if (!at_end() && (s[pos] == '+' || s[pos] == '-')) ++pos;
      if (!digits()) return false;
    }
    return true;
  }

  bool array(int depth) {
    ++pos;
    skip_ws();
    if (!at_end() && s[pos] == ']') {
      ++pos;
      return true;
    }
    for (;;) {
      Value v;
      if (!value(depth + 1, v)) return false;
      skip_ws();
      if (at_end()) return false;
      if (s[pos] == ']') {
        ++pos;
        return true;
      }
      if (s[pos] != ',') return false;
      ++pos;
    }
  }

  bool object(int depth) {
    ++pos;
    skip_ws();
    if (!at_end() && s[pos] == '}') {
      ++pos;
      return true;
    }
    Names names;
    for (;;) {
      skip_ws();
      if (at_end() || s[pos] != '"') return false;
      std::size_t start = pos;
      if (!string()) return false;
      if (strict && !names.add(s.substr(start, pos - start))) return false;
      skip_ws();
      if (at_end() || s[pos] != ':') return false;
      ++pos;
      Value v;
      if (!value(depth + 1, v)) return false;
      skip_ws();
      if (at_end()) return false;
      if (s[pos] == '}') {
        ++pos;
        return !strict || names.distinct();
      }
      if (s[pos] != ',') return false;
      ++pos;
    }
  }

  // One value at pos (after optional whitespace); `depth` counts the arrays and objects around.
  bool value(int depth, Value& out) {
    skip_ws();
    if (at_end()) return false;
    std::size_t start = pos;
    bool ok;
    char c = s[pos];
    if (c == '{' || c == '[') {
      if (depth >= kMaxDepth) return false;
      out.type = c == '{' ? Type::kObject : Type::kArray;
      ok = c == '{' ? object(depth) : array(depth);
    } else if (c == '"') {
      out.type = Type::kString;
      ok = string();
    } else if (c == '-' || is_digit(c)) {
      out.type = Type::kNumber;
      ok = number();
    } else if (c == 't' || c == 'f') {
      out.type = Type::kBool;
      ok = literal(c == 't' ? "true" : "false");
    } else {
      out.type = Type::kNull;
      ok = literal("null");
    }
    if (!ok) return false;
    out.raw = s.substr(start, pos - start);
    return true;
  }
};

}  // namespace

bool parse(std::string_view text, Value& out) {
  Parser p{text};
  if (!p.value(0, out)) return false;
  p.skip_ws();
  return p.at_end();
}

bool Value::next_element(std::size_t& pos, Value& out) const {
  Parser p{raw, pos, false};
  p.skip_ws();
  if (p.at_end() || raw[p.pos] == ']') return false;
  if (raw[p.pos] == ',') ++p.pos;
  if (!p.value(0, out)) return false;
  pos = p.pos;
  return true;
}

std::size_t Value::size() const {
  std::size_t n = 0;
  for_each_element([&](const Value&) { ++n; });
  return n;
}

bool Value::next_member(std::size_t& pos, std::string& scratch, std::string_view& name,
                        Value& out) const {
  Parser p{raw, pos, false};
  p.skip_ws();
  if (!p.at_end() && raw[p.pos] == ',') {
    ++p.pos;
    p.skip_ws();
  }
  if (p.at_end() || raw[p.pos] != '"') return false;
  std::size_t start = p.pos;
  if (!p.string()) return false;
  std::string_view key = raw.substr(start, p.pos - start);
  if (key.find('\\') == std::string_view::npos) {
    name = key.substr(1, key.size() - 2);
  } else {
    if (!unescape(key, scratch)) return false;
    name = scratch;
  }
  p.skip_ws();
  if (p.at_end() || raw[p.pos] != ':') return false;
  ++p.pos;
  if (!p.value(0, out)) return false;
  pos = p.pos;
  return true;
}

bool Value::find(std::string_view name, Value& out) const {
  if (type != Type::kObject) return false;
  std::size_t pos = 1;
  std::string scratch;
  std::string_view n;
  while (next_member(pos, scratch, n, out)) {
    if (n == name) return true;
  }
  return false;
}

bool Value::get_string(std::string& out) const {
  return type == Type::kString && unescape(raw, out);
}

bool Value::get_bool(bool& out) const {
  if (type != Type::kBool) return false;
  out = raw == "true";
  return true;
}

bool Value::get_int(std::int64_t& out) const {
  if (type != Type::kNumber || raw.empty()) return false;
  std::string_view s = raw;
  bool negative = s.front() == '-';
  if (negative) s.remove_prefix(1);
  // The significant digits are the integer part then the fraction; the value is
  // digits * 10^(exponent - fraction length).
  std::size_t dot = s.find('.'), e = s.find_first_of("eE");
  std::string_view int_part = s.substr(0, std::min(dot, e));
  std::string_view frac = dot == std::string_view::npos
                              ? std::string_view{}
                              : s.substr(dot + 1, e == s.npos ? s.npos : e - dot - 1);
  // The exponent saturates: past a million digits every nonzero value is out of range or
  // below one, and the answer no longer depends on it.
  long exponent = 0;
  if (e != std::string_view::npos) {
    std::string_view ex = s.substr(e + 1);
    bool exp_negative = !ex.empty() && ex.front() == '-';
    if (!ex.empty() && (ex.front() == '-' || ex.front() == '+')) ex.remove_prefix(1);
    for (char c : ex) exponent = std::min(exponent * 10 + (c - '0'), 1000000L);
    if (exp_negative) exponent = -exponent;
  }
  auto digit = [&](std::size_t i) {
    return i < int_part.size() ? int_part[i] - '0' : frac[i - int_part.size()] - '0';
  };
  std::size_t n = int_part.size() + frac.size(), first = 0;
  while (first < n && digit(first) == 0) ++first;
  if (first == n) {
    out = 0;
    return true;
  }
  // Digits [first, first + whole) form the integer part; zeros follow when whole > n - first.
  long whole = static_cast<long>(int_part.size()) + exponent - static_cast<long>(first);
  if (whole > 19) return false;  // at least 10^19, beyond int64_t
  std::uint64_t mag = 0;         // below 10^19: fits, with room for the floor's +1
  for (long i = 0; i < whole; ++i) {
    std::size_t k = first + static_cast<std::size_t>(i);
    mag = mag * 10 + (k < n ? static_cast<std::uint64_t>(digit(k)) : 0);
  }
  bool fraction = false;  // a nonzero digit below the units
  for (std::size_t k = first + static_cast<std::size_t>(std::max(whole, 0L)); k < n; ++k)
    fraction = fraction || digit(k) != 0;
  constexpr std::uint64_t kMax = std::numeric_limits<std::int64_t>::max();
  if (!negative) {
    if (mag > kMax) return false;
    out = static_cast<std::int64_t>(mag);
    return true;
  }
  if (fraction) ++mag;  // floor rounds a negative value away from zero
  if (mag > kMax + 1) return false;
  out =
      mag == kMax + 1 ? std::numeric_limits<std::int64_t>::min() : -static_cast<std::int64_t>(mag);
  return true;
}

}  // namespace wsedge::auth::json
