#pragma once
// Structured log lines on stderr: an event name (a short snake_case identifier) and typed
// fields, never a printf format, written as JSON lines (what log shippers parse) or logfmt:
//
//   LOG_INFO("listening", log::kv("address", a), log::kv("cores", n));
//   {"ts":"2026-11-30T02:56:07.123Z","level":"info","core":0,"event":"listening",...}
//   ts=2026-11-30T02:56:07.123Z level=info core=0 event=listening address=... cores=2
//
// Two filters: calls above the build's WSEDGE_LOG_LEVEL (meson option log_level) compile to
// nothing, and the rest test the run-time level (--log-level) with one relaxed atomic load
// before their arguments are evaluated, so a filtered call costs no allocation and no work.
// Each line is built in a bounded buffer on the stack and leaves in one write(2): lines from
// several cores never interleave, and one that does not fit is cut at a field and marked
// "truncated".
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <initializer_list>
#include <span>
#include <string_view>

#ifndef WSEDGE_LOG_LEVEL
#define WSEDGE_LOG_LEVEL 3  // 0 error, 1 warn, 2 info, 3 debug
#endif

namespace wsedge::log {

enum class Level : std::uint8_t { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };
enum class Format : std::uint8_t { kJson, kLogfmt };

std::string_view level_name(Level l);
// "error", "warn", "info", "debug" / "json", "logfmt"; false for anything else.
bool parse_level(std::string_view s, Level& out);
bool parse_format(std::string_view s, Format& out);

// One typed field. Strings are views: what they name must outlive the call (it always does,
// the line is written before the call returns).
struct Field {
  enum class Kind : std::uint8_t { kString, kInt, kUint, kDouble, kBool };
  std::string_view key;
  Kind kind = Kind::kString;
  std::string_view s;
  union {
    std::int64_t i = 0;
    std::uint64_t u;
    double d;
    bool b;
  };
};

constexpr Field kv(std::string_view key, std::string_view v) {
  Field f;
  f.key = key;
  f.s = v;
  return f;
}
// A null C string is logged as empty rather than crashing the line (strerror never returns
// one, but an exception's what() from a foreign library might).
constexpr Field kv(std::string_view key, const char* v) {
  return kv(key, v ? std::string_view(v) : std::string_view());
}
template <std::signed_integral T>
requires(!std::same_as<T, bool> && !std::same_as<T, char>) constexpr Field
    kv(std::string_view key, T v) {
  Field f;
  f.key = key;
  f.kind = Field::Kind::kInt;
  f.i = v;
  return f;
}
template <std::unsigned_integral T>
requires(!std::same_as<T, bool>) constexpr Field kv(std::string_view key, T v) {
  Field f;
  f.key = key;
  f.kind = Field::Kind::kUint;
  f.u = v;
  return f;
}
constexpr Field kv(std::string_view key, double v) {
  Field f;
  f.key = key;
  f.kind = Field::Kind::kDouble;
  f.d = v;
  return f;
}
constexpr Field kv(std::string_view key, bool v) {
  Field f;
  f.key = key;
  f.kind = Field::Kind::kBool;
  f.b = v;
  return f;
}

// A bounded list of fields that code outside the call adds to (an application's access-log
// fields): fixed storage, so filling it never allocates; past capacity, fields are dropped.
class Fields {
 public:
  static constexpr std::size_t kCapacity = 24;
  void add(const Field& f) {
    if (n_ < kCapacity) items_[n_++] = f;
  }
  bool has(std::string_view key) const {
    for (std::size_t i = 0; i < n_; ++i) {
      if (items_[i].key == key) return true;
    }
    return false;
  }
  std::span<const Field> view() const { return {items_, n_}; }

 private:
  Field items_[kCapacity];
  std::size_t n_ = 0;
};

// Builds one line in a caller's buffer: pure, so the tests drive it with a fixed time.
class Line {
 public:
  // Kept free until finish(): the truncation marker and the line's end always fit.
  static constexpr std::size_t kReserve = 32;
  // `cap` must exceed kReserve by the head's size (about 80 bytes) for the line to say anything.
  Line(char* buf, std::size_t cap, Format format);
  // core < 0: not logged from a core thread (main, the signal thread), no "core" key.
  void head(const timespec& ts, Level level, int core, std::string_view event);
  // A field that does not fit is left out whole (a JSON line stays parseable), and so is every
  // one after it; finish() then marks the line truncated.
  void field(const Field& f);
  // Closes the line and ends it with '\n'; returns its length.
  std::size_t finish();
  bool truncated() const { return truncated_; }

 private:
  void put(char c);
  void put(std::string_view s);
  void key(std::string_view k);
  void string_value(std::string_view s);
  void escaped(std::string_view s);
  void number(const Field& f);

  char* buf_;
  std::size_t limit_;  // cap - kReserve
  std::size_t len_ = 0;
  Format format_;
  bool overflow_ = false;
  bool truncated_ = false;
};

// At most `per_second` lines in each one-second window at one site; what it refuses is counted
// and reported with the next line it lets through (suppressed=N). An error that repeats for
// every waiting connection (EMFILE) would otherwise write thousands of lines a second. One per
// site and core (a thread_local or a member of a per-core object): no locks.
class RateLimiter {
 public:
  constexpr explicit RateLimiter(std::uint32_t per_second) : per_second_(per_second) {}
  // True: log now, with `suppressed` set to how many were refused since the last line.
  bool allow(std::uint64_t now_ms, std::uint64_t& suppressed);
  void set_rate(std::uint32_t per_second) { per_second_ = per_second; }

 private:
  std::uint32_t per_second_;
  std::uint32_t used_ = 0;
  bool started_ = false;
  std::uint64_t window_ms_ = 0;
  std::uint64_t suppressed_ = 0;
};

// The longest line; a longer one is truncated (the exit summaries, every counter as a field,
// are the longest, at about 4 KiB).
constexpr std::size_t kMaxLine = 8192;

namespace detail {
inline std::atomic<std::uint8_t> level{static_cast<std::uint8_t>(Level::kInfo)};
}  // namespace detail

// The run-time level: a relaxed load per call, settable at any time from any thread (a config
// reload changes it while the cores run).
inline void set_level(Level l) {
  detail::level.store(static_cast<std::uint8_t>(l), std::memory_order_relaxed);
}
inline Level level() {
  return static_cast<Level>(detail::level.load(std::memory_order_relaxed));
}
inline bool enabled(Level l) {
  return static_cast<std::uint8_t>(l) <= detail::level.load(std::memory_order_relaxed);
}
void set_format(Format f);
Format format();
// The core index every line from this thread carries; serve() sets it on each core's thread.
// -1 (the default): not a core thread.
void set_core(int core);
// CLOCK_MONOTONIC_COARSE in ms: a vDSO read, for rate limiters without a reactor clock.
std::uint64_t coarse_now_ms();

// Writes one line: `more` follows `fields` (a rate limiter's suppressed count, the engine's
// fields after an application's). Bypasses the level test: callers test enabled() first.
void emit(Level l, std::string_view event, std::span<const Field> fields,
          std::span<const Field> more = {});
inline void emit(Level l, std::string_view event, std::initializer_list<Field> fields) {
  emit(l, event, std::span<const Field>(fields.begin(), fields.size()));
}
// A rate-limited line: suppressed=N added when N > 0.
void emit_suppressed(Level l, std::string_view event, std::uint64_t suppressed,
                     std::initializer_list<Field> fields);

}  // namespace wsedge::log

#define WSEDGE_LOG(lvl, event, ...)                                                        \
  do {                                                                                     \
    if constexpr ((lvl) <= WSEDGE_LOG_LEVEL) {                                             \
      if (::wsedge::log::enabled(static_cast<::wsedge::log::Level>(lvl)))                  \
        ::wsedge::log::emit(static_cast<::wsedge::log::Level>(lvl), event, {__VA_ARGS__}); \
    }                                                                                      \
  } while (0)
#define LOG_ERROR(...) WSEDGE_LOG(0, __VA_ARGS__)
#define LOG_WARN(...) WSEDGE_LOG(1, __VA_ARGS__)
#define LOG_INFO(...) WSEDGE_LOG(2, __VA_ARGS__)
#define LOG_DEBUG(...) WSEDGE_LOG(3, __VA_ARGS__)

// At most `per_second` lines a second from this call site on this thread (core); the next
// line after a quiet spell says how many were suppressed.
#define WSEDGE_LOG_LIMITED(lvl, per_second, event, ...)                                        \
  do {                                                                                         \
    if constexpr ((lvl) <= WSEDGE_LOG_LEVEL) {                                                 \
      if (::wsedge::log::enabled(static_cast<::wsedge::log::Level>(lvl))) {                    \
        static thread_local ::wsedge::log::RateLimiter wsedge_log_limiter_{per_second};        \
        std::uint64_t wsedge_log_suppressed_ = 0;                                              \
        if (wsedge_log_limiter_.allow(::wsedge::log::coarse_now_ms(), wsedge_log_suppressed_)) \
          ::wsedge::log::emit_suppressed(static_cast<::wsedge::log::Level>(lvl), event,        \
                                         wsedge_log_suppressed_, {__VA_ARGS__});               \
      }                                                                                        \
    }                                                                                          \
  } while (0)
#define LOG_ERROR_LIMITED(...) WSEDGE_LOG_LIMITED(0, __VA_ARGS__)
#define LOG_WARN_LIMITED(...) WSEDGE_LOG_LIMITED(1, __VA_ARGS__)
