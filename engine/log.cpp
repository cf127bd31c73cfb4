#include "log.hpp"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>

namespace wsedge::log {
namespace {

std::atomic<std::uint8_t> g_format{static_cast<std::uint8_t>(Format::kJson)};
thread_local int t_core = -1;

constexpr std::string_view kLevelNames[] = {"error", "warn", "info", "debug"};

// The length of the valid UTF-8 sequence at s[i], or 0 when it is not one (a stray
// continuation byte, an overlong form, a surrogate, past U+10FFFF, cut short). RFC 3629 §4.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = b(0);
  std::size_t n = c < 0x80                 ? 1
                  : c >= 0xC2 && c <= 0xDF ? 2
                  : c >= 0xE0 && c <= 0xEF ? 3
                  : c >= 0xF0 && c <= 0xF4 ? 4
                                           : 0;
  if (n <= 1 || i + n > s.size()) return n == 1 ? 1 : 0;
  // The second byte's range excludes overlongs (E0, F0), surrogates (ED) and > U+10FFFF (F4).
  unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
  unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
  if (b(1) < lo || b(1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
  }
  return n;
}

// logfmt values are bare unless they hold what would split or confuse them.
bool needs_quotes(std::string_view s) {
  if (s.empty()) return true;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7F || c == '"' || c == '=' || c == '\\') return true;
  }
  return false;
}

void write_all(const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(STDERR_FILENO, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere left to report it
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

}  // namespace

std::string_view level_name(Level l) {
  return kLevelNames[static_cast<std::uint8_t>(l) & 3];
}

bool parse_level(std::string_view s, Level& out) {
  for (std::uint8_t i = 0; i < 4; ++i) {
    if (s == kLevelNames[i]) {
      out = static_cast<Level>(i);
      return true;
    }
  }
  return false;
}

bool parse_format(std::string_view s, Format& out) {
  if (s == "json")
    out = Format::kJson;
  else if (s == "logfmt")
    out = Format::kLogfmt;
  else
    return false;
  return true;
}

Line::Line(char* buf, std::size_t cap, Format format)
    : buf_(buf), limit_(cap > kReserve ? cap - kReserve : 0), format_(format) {}

void Line::put(char c) {
  if (len_ < limit_)
    buf_[len_++] = c;
  else
    overflow_ = true;
}

void Line::put(std::string_view s) {
  std::size_t n = std::min(s.size(), limit_ - len_);
  std::memcpy(buf_ + len_, s.data(), n);
  len_ += n;
  if (n < s.size()) overflow_ = true;
}

// JSON string escaping (RFC 8259 §7), also used inside quoted logfmt values: quotes, backslash
// and control characters escaped; invalid UTF-8 replaced by U+FFFD, byte by byte, so a line
// always decodes (a peer's bytes in a reason must not make a log shipper drop the line).
void Line::escaped(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < s.size() && !overflow_;) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = utf8_sequence(s, i);
    if (n == 0) {
      put("\xEF\xBF\xBD");
      ++i;
      continue;
    }
    if (n > 1) {
      put(s.substr(i, n));
      i += n;
      continue;
    }
    ++i;
    switch (c) {
      case '"':
        put("\\\"");
        break;
      case '\\':
        put("\\\\");
        break;
      case '\n':
        put("\\n");
        break;
      case '\r':
        put("\\r");
        break;
      case '\t':
        put("\\t");
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
          put({u, sizeof u});
        } else {
          put(static_cast<char>(c));
        }
    }
  }
}

void Line::key(std::string_view k) {
  if (format_ == Format::kJson) {
    put(len_ > 1 ? ",\"" : "\"");
    put(k);
    put("\":");
  } else {
    if (len_ > 0) put(' ');
    put(k);
    put('=');
  }
}

void Line::string_value(std::string_view s) {
  bool quote = format_ == Format::kJson || needs_quotes(s);
  if (quote) put('"');
  if (quote)
    escaped(s);
  else
    put(s);
  if (quote) put('"');
}

void Line::number(const Field& f) {
  char tmp[32];
  std::to_chars_result r{tmp, {}};
  switch (f.kind) {
    case Field::Kind::kInt:
      r = std::to_chars(tmp, tmp + sizeof tmp, f.i);
      break;
    case Field::Kind::kUint:
      r = std::to_chars(tmp, tmp + sizeof tmp, f.u);
      break;
    case Field::Kind::kDouble:
      // JSON has no NaN or infinity.
      if (!std::isfinite(f.d)) {
        put(format_ == Format::kJson ? "null" : (std::isnan(f.d) ? "nan" : "inf"));
        return;
      }
      r = std::to_chars(tmp, tmp + sizeof tmp, f.d);
      break;
    case Field::Kind::kBool:
      put(f.b ? "true" : "false");
      return;
    case Field::Kind::kString:
      return;
  }
  put({tmp, static_cast<std::size_t>(r.ptr - tmp)});
}

void Line::head(const timespec& ts, Level level, int core, std::string_view event) {
  tm t;
  gmtime_r(&ts.tv_sec, &t);
  // RFC 3339, UTC, milliseconds: "2026-11-30T02:56:07.123Z".
  char stamp[25];
  auto two = [](char* p, int v) {
    p[0] = static_cast<char>('0' + v / 10 % 10);
    p[1] = static_cast<char>('0' + v % 10);
  };
  int year = t.tm_year + 1900;
  two(stamp, year / 100);
  two(stamp + 2, year % 100);
  stamp[4] = '-';
  two(stamp + 5, t.tm_mon + 1);
  stamp[7] = '-';
  two(stamp + 8, t.tm_mday);
  stamp[10] = 'T';
  two(stamp + 11, t.tm_hour);
  stamp[13] = ':';
  two(stamp + 14, t.tm_min);
  stamp[16] = ':';
  two(stamp + 17, t.tm_sec);
  stamp[19] = '.';
  auto ms = static_cast<int>(ts.tv_nsec / 1000000);
  stamp[20] = static_cast<char>('0' + ms / 100);
  two(stamp + 21, ms % 100);
  stamp[23] = 'Z';
  if (format_ == Format::kJson) put('{');
  key("ts");
  string_value({stamp, 24});
  key("level");
  string_value(level_name(level));
  if (core >= 0) field(kv("core", core));
  key("event");
  string_value(event);
}

void Line::field(const Field& f) {
  if (truncated_) return;
  std::size_t start = len_;
  key(f.key);
  if (f.kind == Field::Kind::kString)
    string_value(f.s);
  else
    number(f);
  if (overflow_) {
    len_ = start;
    overflow_ = false;
    truncated_ = true;
  }
}

std::size_t Line::finish() {
  // The reserve is still free: limit_ rises to use it for the marker and the end.
  limit_ += kReserve;
  if (truncated_) {
    key("truncated");
    put("true");
  }
  if (format_ == Format::kJson) put('}');
  put('\n');
  return len_;
}

bool RateLimiter::allow(std::uint64_t now_ms, std::uint64_t& suppressed) {
  if (!started_ || now_ms - window_ms_ >= 1000) {
    started_ = true;
    window_ms_ = now_ms;
    used_ = 0;
  }
  if (used_ >= per_second_) {
    ++suppressed_;
    return false;
  }
  ++used_;
  suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

void set_format(Format f) {
  g_format.store(static_cast<std::uint8_t>(f), std::memory_order_relaxed);
}
Format format() {
  return static_cast<Format>(g_format.load(std::memory_order_relaxed));
}
void set_core(int core) {
  t_core = core;
}

std::uint64_t coarse_now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1000000;
}

void emit(Level l, std::string_view event, std::span<const Field> fields,
          std::span<const Field> more) {
  char buf[kMaxLine];
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  Line line(buf, sizeof buf, format());
  line.head(ts, l, t_core, event);
  for (const Field& f : fields) line.field(f);
  for (const Field& f : more) line.field(f);
  // One write per line: lines from several cores never interleave.
  write_all(buf, line.finish());
}

void emit_suppressed(Level l, std::string_view event, std::uint64_t suppressed,
                     std::initializer_list<Field> fields) {
  Field extra = kv("suppressed", suppressed);
  emit(l, event, std::span<const Field>(fields.begin(), fields.size()),
       std::span<const Field>(&extra, suppressed ? 1 : 0));
}

}  // namespace wsedge::log
