#include "log.hpp"

#include <cstdio>
#include <ctime>

namespace wsedge::log {

void write(int level, const char* fmt, ...) {
  static const char* const kNames[] = {"error", "warn", "info", "debug"};
  char line[4096];  // the exit summary names every counter
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t;
  gmtime_r(&ts.tv_sec, &t);
  int n = std::snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ",
                        t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                        ts.tv_nsec / 1000000, kNames[level & 3]);
  va_list ap;
  va_start(ap, fmt);
  int m = std::vsnprintf(line + n, sizeof line - static_cast<std::size_t>(n) - 1, fmt, ap);
  va_end(ap);
  std::size_t len = static_cast<std::size_t>(n) + (m < 0 ? 0 : static_cast<std::size_t>(m));
  if (len > sizeof line - 2) len = sizeof line - 2;
  line[len++] = '\n';
  // One write per line so lines from several cores never interleave.
  std::fwrite(line, 1, len, stderr);
}

}  // namespace wsedge::log
