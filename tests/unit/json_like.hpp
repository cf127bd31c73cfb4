#pragma once
// Deterministic JSON-like text, the kind of message an edge mostly carries: objects with ids,
// names, timestamps and nested arrays, repetitive in keys and not in values. Shared by the
// deflate tests and bench/micro.cpp so the ratios measured are those tested.
#include <cstddef>
#include <cstdint>
#include <string>

namespace wsedge::test {

// Exactly `size` bytes (the last object cut where the size ends); the same for the same seed.
inline std::string json_like(std::size_t size, std::uint32_t seed = 1) {
  static constexpr const char* kNames[] = {"alice", "bob",   "carol", "dave",
                                           "erin",  "frank", "grace", "heidi"};
  static constexpr const char* kKinds[] = {"trade", "quote", "chat", "presence"};
  std::uint32_t x = seed;
  auto next = [&x] {
    x = x * 1664525u + 1013904223u;  // Numerical Recipes' LCG: deterministic everywhere
    return x >> 8;
  };
  std::string s = "[";
  std::uint64_t ts = 1764470000000;
  for (std::uint64_t id = 1; s.size() < size; ++id) {
    ts += next() % 5000;
    if (id > 1) s.append(",");
    s.append("{\"id\":")
        .append(std::to_string(100000 + id * 37 + next() % 10))
        .append(",\"name\":\"")
        .append(kNames[next() % 8])
        .append("\",\"kind\":\"")
        .append(kKinds[next() % 4])
        .append("\",\"ts\":")
        .append(std::to_string(ts))
        .append(",\"price\":")
        .append(std::to_string(next() % 100000 / 100.0).substr(0, 7))
        .append(",\"tags\":[");
    for (std::uint32_t t = 0, n = next() % 4; t < n; ++t)
      s.append(t ? "," : "").append("\"t").append(std::to_string(next() % 20)).append("\"");
    s.append("],\"pos\":{\"x\":")
        .append(std::to_string(next() % 1000))
        .append(",\"y\":")
        .append(std::to_string(next() % 1000))
        .append("}}");
  }
  s.resize(size);
  return s;
}

}  // namespace wsedge::test
