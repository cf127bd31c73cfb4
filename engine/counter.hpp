#pragma once
// Live counters. Each core's counters are written by that core only and read by any thread at
// any time (the exit log, a metrics exporter): a relaxed atomic load and store, never a locked
// read-modify-write, so counting costs what a plain increment costs and a reader never sees a
// torn value. Every counter struct comes with one table of names, help texts and types, which
// both the exit summary and a metrics endpoint print from, so the two never disagree.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <vector>

#include "engine/log.hpp"

namespace wsedge {

class Counter {
 public:
  Counter() = default;
  // Copies are snapshots (tests and exporters copy whole counter structs).
  Counter(const Counter& o) : v_(o.get()) {}
  Counter& operator=(const Counter& o) {
    v_.store(o.get(), std::memory_order_relaxed);
    return *this;
  }

  // Owner core only: a load and a store, not fetch_add; no other thread ever writes.
  void operator++() { add(1); }
  void operator--() { v_.store(get() - 1, std::memory_order_relaxed); }
  void operator+=(std::uint64_t n) { add(n); }
  // Gauges that mirror a size the owner keeps (subscriptions, connections).
  void set(std::uint64_t v) { v_.store(v, std::memory_order_relaxed); }
  // Any thread.
  std::uint64_t get() const { return v_.load(std::memory_order_relaxed); }
  operator std::uint64_t() const { return get(); }

 private:
  void add(std::uint64_t n) { v_.store(get() + n, std::memory_order_relaxed); }
  std::atomic<std::uint64_t> v_{0};
};

// Values counted in fixed buckets, with their sum, per core: what a scrape turns into a
// Prometheus histogram. kBounds are the buckets' upper bounds, ascending, in the unit recorded;
// a last bucket counts what is above them. Written by the owner core only, as Counter.
template <const auto& kBounds>
struct FixedHistogram {
  static constexpr std::size_t kBuckets = std::size(kBounds) + 1;
  void record(std::uint64_t v) {
    std::size_t i = 0;
    while (i < std::size(kBounds) && v > kBounds[i]) ++i;
    ++buckets[i];
    sum += v;
  }
  std::uint64_t count() const {
    std::uint64_t n = 0;
    for (const Counter& b : buckets) n += b.get();
    return n;
  }
  Counter buckets[kBuckets];  // not cumulative
  Counter sum;
};

enum class MetricType : std::uint8_t {
  kCounter,  // only grows
  kGauge,    // goes up and down (live connections)
};

// One row of a counter struct's table; Struct is the struct the member belongs to.
template <class Struct>
struct MetricInfo {
  const char* name;  // snake_case, unique across all tables; exporters add a prefix
  const char* help;
  MetricType type;
  Counter Struct::*field;
};

// Calls fn(info, value) for every row of `table` over one struct instance.
template <class Struct, class Fn>
void for_each_metric(std::span<const MetricInfo<Struct>> table, const Struct& s, Fn&& fn) {
  for (const MetricInfo<Struct>& m : table) fn(m, (s.*m.field).get());
}

// Appends a field per row: the exit summaries log every counter by the name a scrape gives it.
template <class Struct>
void append_metric_fields(std::vector<log::Field>& out, std::span<const MetricInfo<Struct>> table,
                          const Struct& s) {
  for_each_metric(table, s, [&out](const MetricInfo<Struct>& info, std::uint64_t value) {
    out.push_back(log::kv(info.name, value));
  });
}

}  // namespace wsedge
