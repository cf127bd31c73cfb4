#pragma once
// Latency histogram with log-spaced buckets: 32 sub-buckets per power of two (about 3 %
// resolution) from 1 ns to ~1 hour, fixed memory, O(1) record.
#include <array>
#include <bit>
#include <cstdint>

namespace wsedge::bench {

class Histogram {
 public:
  static constexpr int kSub = 32;
  void record(std::uint64_t ns) {
    ++buckets_[index(ns)];
    ++count_;
    if (ns > max_) max_ = ns;
  }
  void merge(const Histogram& o) {
    for (std::size_t i = 0; i < kBuckets; ++i) buckets_[i] += o.buckets_[i];
    count_ += o.count_;
    if (o.max_ > max_) max_ = o.max_;
  }
  std::uint64_t count() const { return count_; }
  std::uint64_t max() const { return max_; }
  // The upper bound of the bucket holding the p-th percentile (p in 0..100).
  std::uint64_t percentile(double p) const {
    if (count_ == 0) return 0;
    auto want = static_cast<std::uint64_t>(p / 100.0 * static_cast<double>(count_ - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen >= want) return upper(i) < max_ ? upper(i) : max_;
    }
    return max_;
  }

 private:
  static constexpr int kShift = 5;  // log2(kSub)
  static std::size_t index(std::uint64_t v) {
    if (v < kSub) return static_cast<std::size_t>(v);
    int e = std::bit_width(v) - 1 - kShift;  // v >> e is in [kSub, 2*kSub)
    auto i = static_cast<std::size_t>((e + 1) * kSub + static_cast<int>((v >> e) - kSub));
    return i < kBuckets ? i : kBuckets - 1;
  }
  static std::uint64_t upper(std::size_t i) {
    if (i < kSub) return i;
    std::size_t e = i / kSub - 1;
    return ((kSub + i % kSub + 1) << e) - 1;
  }
  static constexpr std::size_t kBuckets = 45 * kSub;
  std::array<std::uint64_t, kBuckets> buckets_{};
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

}  // namespace wsedge::bench
