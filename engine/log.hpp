#pragma once
// Structured log lines on stderr ("ts=... level=... core=... msg=..."). The level is fixed at
// compile time: calls above WSEDGE_LOG_LEVEL compile to nothing.
#include <cstdarg>

#ifndef WSEDGE_LOG_LEVEL
#define WSEDGE_LOG_LEVEL 2  // 0 error, 1 warn, 2 info, 3 debug
#endif

namespace wsedge::log {
void write(int level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
}

#define WSEDGE_LOG(level, ...)                                                           \
  do {                                                                                   \
    if constexpr ((level) <= WSEDGE_LOG_LEVEL) ::wsedge::log::write(level, __VA_ARGS__); \
  } while (0)
#define LOG_ERROR(...) WSEDGE_LOG(0, __VA_ARGS__)
#define LOG_WARN(...) WSEDGE_LOG(1, __VA_ARGS__)
#define LOG_INFO(...) WSEDGE_LOG(2, __VA_ARGS__)
#define LOG_DEBUG(...) WSEDGE_LOG(3, __VA_ARGS__)
